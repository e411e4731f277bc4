import { Gauge, Histogram, type Registry } from 'prom-client';
import type pg from 'pg';
import { pendingStats } from './db/saga-repository';
import type { Finished } from './messaging/handlers';

/**
 * The saga metrics: how long sagas take by outcome (observed when the monitor commits the event that finished one),
 * and, read from the monitor's database at each scrape, how many are pending and stuck and how old the oldest is.
 */
export function createSagaMetrics(registry: Registry, pool: pg.Pool, stuckAfterMs: number) {
  const duration = new Histogram({
    name: 'saga_duration_seconds',
    help: 'Time from OrderPlaced to the final event (OrderConfirmed or OrderCancelled), by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  let stats: Promise<Awaited<ReturnType<typeof pendingStats>>> | undefined;
  // One query per scrape for the three gauges (each gauge's collect asks; the first starts it, the rest share it).
  const read = () => {
    stats ??= pendingStats(pool, stuckAfterMs).finally(() => setImmediate(() => (stats = undefined)));
    return stats;
  };
  new Gauge({
    name: 'sagas_stuck',
    help: 'Sagas not final with no event for SAGA_STUCK_AFTER_MS',
    registers: [registry],
    async collect() {
      this.set((await read()).stuck);
    },
  });
  new Gauge({
    name: 'sagas_pending',
    help: 'Sagas not final (stuck ones included)',
    registers: [registry],
    async collect() {
      this.set((await read()).pending);
    },
  });
  new Gauge({
    name: 'saga_oldest_pending_seconds',
    help: 'Age of the oldest saga that is not final (0 when none is)',
    registers: [registry],
    async collect() {
      this.set((await read()).oldestPendingSeconds);
    },
  });
  return {
    observe(finished: Finished[]) {
      for (const f of finished) if (f.durationSeconds !== undefined) duration.observe({ outcome: f.outcome.toLowerCase() }, f.durationSeconds);
    },
  };
}
