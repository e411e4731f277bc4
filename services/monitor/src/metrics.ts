import { Gauge, Histogram, type Registry } from 'prom-client';
import type pg from 'pg';
import type { CatchUp } from './catch-up';
import { stats } from './db/saga-repository';
import type { Committed } from './messaging/handlers';

/**
 * The saga metrics: how long sagas take by outcome (observed once per saga, when the monitor has both its start and
 * its final event), and, read from the monitor's database at each scrape, how many are pending and stuck and how old
 * the oldest is. When that read fails the gauges keep their last values and `saga_monitor_stats_up` says 0: the rest
 * of /metrics is still served.
 */
export function createSagaMetrics(registry: Registry, pool: pg.Pool, stuckAfterMs: number, catchUp: CatchUp) {
  const duration = new Histogram({
    name: 'saga_duration_seconds',
    help: 'Time from OrderPlaced to the final event (OrderConfirmed or OrderCancelled), by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const last = { stuck: 0, pending: 0, oldestPendingSeconds: 0, up: 0 };
  let reading: Promise<void> | undefined;
  // One query per scrape for every gauge (each gauge's collect asks; the first starts it, the others share it).
  const read = () =>
    (reading ??= stats(pool, { asOf: catchUp.asOf(), stuckAfterMs })
      .then(
        (s) =>
          Object.assign(last, {
            stuck: s.stuck,
            pending: s.pending,
            oldestPendingSeconds: s.oldestPendingSeconds,
            up: 1,
          }),
        () => Object.assign(last, { up: 0 }),
      )
      .then(() => undefined)
      .finally(() => setImmediate(() => (reading = undefined))));
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        await read();
        this.set(value());
      },
    });
  gauge(
    'sagas_stuck',
    'Sagas not settled with no event for SAGA_STUCK_AFTER_MS (counted up to what the monitor has consumed)',
    () => last.stuck,
  );
  gauge('sagas_pending', 'Sagas not settled and not stuck', () => last.pending);
  gauge(
    'saga_oldest_pending_seconds',
    'Age of the oldest saga that is not settled (0 when none is)',
    () => last.oldestPendingSeconds,
  );
  gauge(
    'saga_monitor_stats_up',
    '1 when the last read of the saga gauges from the monitor database succeeded',
    () => last.up,
  );
  gauge(
    'saga_monitor_behind',
    '1 while the monitor has a backlog in its queue (or cannot read its depth): stuck detection then counts only up to the newest event consumed',
    () => (catchUp.behind() ? 1 : 0),
  );
  return {
    committed(c: Committed) {
      if (c.newestEventAt) catchUp.consumed(c.newestEventAt);
      for (const f of c.finished) duration.observe({ outcome: f.outcome.toLowerCase() }, f.durationSeconds);
    },
  };
}
