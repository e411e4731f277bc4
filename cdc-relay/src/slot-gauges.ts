/**
 * The slot gauges, read from the server's view (pg_replication_slots, pg_stat_replication) at scrape time: a catalog
 * view, never the outbox table. prom-client reads every metric of a scrape at once, so each gauge awaits the one
 * shared read of the scrape.
 */
import pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '@saga/common/runtime/logger';
import type { RelayConfig } from './config';
import { lagSeconds } from './lag';
import type { RelayMetrics } from './metrics';
import type { Source } from './source';

/** Longest a scrape waits on a source database for the slot gauges (Prometheus' default scrape timeout is 10 s). */
const SCRAPE_TIMEOUT_MS = 5_000;

/** Wait for `p`, but no longer than `ms`; whichever comes first. */
async function withinMs(ms: number, p: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

type SlotRow = {
  lag: string | null;
  retained: string | null;
  safe: string | null;
  wal_status: string | null;
  flush_lag: number | null;
};

export function createSlotGauges(
  config: RelayConfig,
  sources: Source[],
  metrics: RelayMetrics,
  registry: Registry,
  log: Logger,
): { readOnce: () => Promise<void>; stop: () => Promise<void> } {
  // Every wait on a source database is bounded: a source behind a half-open link (no data, no FIN, no RST) must not
  // hang /metrics (prom-client awaits the slot gauges' collect on each scrape) nor the relay's stop.
  const waitMs = Math.min(config.RELAY_REPLICATION_TIMEOUT_MS ?? SCRAPE_TIMEOUT_MS, SCRAPE_TIMEOUT_MS);
  const pools = metricsPools(log, waitMs);

  // The walsender's flush_lag (seconds) per source, from the last read of the slot row; null when it shows none.
  const serverFlushLag = new Map<string, number | null>();
  // prom-client reads every metric of a scrape at once: a gauge without a collect() of its own would report what the
  // previous scrape's read left in it, so each slot gauge awaits the one shared read (readSlotsOnce, below).
  const slotGauge = (name: string, help: string) =>
    new Gauge({
      name,
      help,
      labelNames: ['source', 'slot'] as const,
      registers: [registry],
      collect: () => readSlotsOnce(),
    });
  const retained = slotGauge(
    'relay_slot_retained_wal_bytes',
    'WAL bytes the server keeps for the slot (from its restart_lsn)',
  );
  const safe = slotGauge(
    'relay_slot_safe_wal_bytes',
    'Bytes of WAL that can still be written before the slot is lost to max_slot_wal_keep_size (-1: unlimited, 0: lost, see relay_slot_lost)',
  );
  // Read from pg_replication_slots at scrape time: a catalog view, never the outbox table.
  const collectSlots = async () => {
    await withinMs(
      waitMs,
      Promise.all(
        config.RELAY_SOURCES.map(async (s, i) => {
          const slot = sources[i]!.slot;
          try {
            const r = await readSlotRow(pools.poolFor(s.name, s.url), slot);
            serverFlushLag.set(s.name, r?.flush_lag ?? null);
            if (!r) return;
            const g = slotGauges(r);
            lag.set({ source: s.name, slot }, g.lag);
            retained.set({ source: s.name, slot }, g.retained);
            safe.set({ source: s.name, slot }, g.safe);
            metrics.slotLost.set({ source: s.name }, g.lost ? 1 : 0);
          } catch (err) {
            serverFlushLag.set(s.name, null);
            log.debug({ err, source: s.name }, 'could not read slot metrics');
          }
        }),
      ),
    );
  };
  // One read of the slot rows per scrape, shared by the gauges that await it (prom-client collects them together).
  let reading: Promise<void> | undefined;
  const readSlotsOnce = () => (reading ??= collectSlots().finally(() => (reading = undefined)));
  // The read sets all three slot gauges (and relay_slot_lost).
  const lag = slotGauge(
    'relay_replication_lag_bytes',
    'WAL bytes between the server position and what the slot confirmed',
  );
  lagSecondsGauge(registry, sources, readSlotsOnce, serverFlushLag);

  return {
    readOnce: readSlotsOnce,
    stop: () => pools.end(),
  };
}

/** One small pool per source database for the scrape's reads, each wait bounded by `waitMs`. */
function metricsPools(log: Logger, waitMs: number) {
  const pools = new Map<string, pg.Pool>();
  return {
    poolFor(name: string, url: string): pg.Pool {
      let p = pools.get(name);
      if (!p) {
        p = new pg.Pool({
          connectionString: url,
          max: 1,
          idleTimeoutMillis: 10_000,
          application_name: `cdc-relay ${name} metrics`,
          connectionTimeoutMillis: waitMs,
          query_timeout: waitMs,
          keepAlive: true,
        } as pg.PoolConfig);
        p.on('error', (err) => log.debug({ err }, 'metrics connection failed'));
        pools.set(name, p);
      }
      return p;
    },
    // pool.end() waits for a checked-out client; one stuck on a dead link is given up after the bound.
    end: () => withinMs(waitMs, Promise.all([...pools.values()].map((p) => p.end().catch(() => undefined)))),
  };
}

/** The slot's row in the server's view, with its walsender's flush_lag; undefined when the slot does not exist. */
async function readSlotRow(pool: pg.Pool, slot: string): Promise<SlotRow | undefined> {
  // flush_lag is visible to the relay's role: the walsender is its own session (same role).
  const { rows } = await pool.query<SlotRow>(
    `SELECT GREATEST(0, pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn))::text AS lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::text AS retained,
            s.safe_wal_size::text AS safe, s.wal_status,
            EXTRACT(EPOCH FROM r.flush_lag)::float8 AS flush_lag
       FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [slot],
  );
  return rows[0];
}

function lagSecondsGauge(
  registry: Registry,
  sources: Source[],
  readSlotsOnce: () => Promise<void>,
  serverFlushLag: Map<string, number | null>,
): void {
  new Gauge({
    name: 'relay_replication_lag_seconds',
    help: 'Seconds this relay is behind the source: the larger of now minus the commit time of the oldest transaction received and not yet acknowledged, and the walsender flush_lag (0 once caught up); absent while this relay does not stream the source',
    labelNames: ['source'] as const,
    registers: [registry],
    async collect() {
      await readSlotsOnce();
      const now = Date.now();
      for (const s of sources) {
        const stream = s.streamLagSeconds(now);
        if (stream === undefined) this.remove({ source: s.name });
        else this.set({ source: s.name }, lagSeconds(stream, serverFlushLag.get(s.name) ?? null));
      }
    },
  });
}

/**
 * The slot gauges from a pg_replication_slots row. `safe_wal_size` is NULL both when the size is unlimited and when
 * the slot is already lost: the second is told apart by `wal_status` and reported as lost (safe 0), never as -1.
 */
export function slotGauges(r: {
  lag: string | null;
  retained: string | null;
  safe: string | null;
  wal_status: string | null;
}) {
  const lost = r.wal_status === 'lost';
  return {
    lag: Number(r.lag ?? 0),
    retained: Number(r.retained ?? 0),
    safe: lost ? 0 : r.safe === null ? -1 : Number(r.safe),
    lost,
  };
}
