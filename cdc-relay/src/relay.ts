import pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '@saga/common/logger';
import type { RelayConfig } from './config';
import { createRelayMetrics } from './metrics';
import { createSource, type Source } from './source';

/** Longest a scrape waits on a source database for the slot gauges (Prometheus' default scrape timeout is 10 s). */
const SCRAPE_TIMEOUT_MS = 5_000;

/** Wait for `p`, but no longer than `ms`; whichever comes first. */
async function withinMs(ms: number, p: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export type Relay = { start: () => void; stop: () => Promise<void>; ready: () => Promise<Record<string, boolean>>; sources: Source[] };

/** All sources of one relay process, plus the slot metrics read from the server's view on each scrape. */
export function createRelay(config: RelayConfig, log: Logger, registry: Registry): Relay {
  const metrics = createRelayMetrics(registry);
  const sources = config.RELAY_SOURCES.map((s) => createSource(config, s, log.child({ source: s.name }), metrics));
  const pools = new Map<string, pg.Pool>();
  // Every wait on a source database is bounded: a source behind a half-open link (no data, no FIN, no RST) must not
  // hang /metrics (prom-client awaits the slot gauges' collect on each scrape) nor the relay's stop.
  const waitMs = Math.min(config.RELAY_REPLICATION_TIMEOUT_MS ?? SCRAPE_TIMEOUT_MS, SCRAPE_TIMEOUT_MS);
  const poolFor = (name: string, url: string) => {
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
  };

  type SlotRow = { lag: string | null; retained: string | null; safe: string | null; wal_status: string | null };
  const retained = new Gauge({ name: 'relay_slot_retained_wal_bytes', help: 'WAL bytes the server keeps for the slot (from its restart_lsn)', labelNames: ['source', 'slot'] as const, registers: [registry] });
  const safe = new Gauge({
    name: 'relay_slot_safe_wal_bytes',
    help: 'Bytes of WAL that can still be written before the slot is lost to max_slot_wal_keep_size (-1: unlimited, 0: lost, see relay_slot_lost)',
    labelNames: ['source', 'slot'] as const,
    registers: [registry],
  });
  // Read from pg_replication_slots at scrape time: a catalog view, never the outbox table.
  const collectSlots = async () => {
    await withinMs(waitMs, Promise.all(
      config.RELAY_SOURCES.map(async (s, i) => {
        const slot = sources[i]!.slot;
        try {
          const { rows } = await poolFor(s.name, s.url).query<SlotRow>(
            `SELECT GREATEST(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::text AS lag,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS retained,
                    safe_wal_size::text AS safe, wal_status
               FROM pg_replication_slots WHERE slot_name = $1`,
            [slot],
          );
          const r = rows[0];
          if (!r) return;
          const g = slotGauges(r);
          lag.set({ source: s.name, slot }, g.lag);
          retained.set({ source: s.name, slot }, g.retained);
          safe.set({ source: s.name, slot }, g.safe);
          metrics.slotLost.set({ source: s.name }, g.lost ? 1 : 0);
        } catch (err) {
          log.debug({ err, source: s.name }, 'could not read slot metrics');
        }
      }),
    ));
  };
  // prom-client awaits this gauge's collect() on each scrape; it sets the other two slot gauges as well.
  const lag = new Gauge({
    name: 'relay_replication_lag_bytes',
    help: 'WAL bytes between the server position and what the slot confirmed',
    labelNames: ['source', 'slot'] as const,
    registers: [registry],
    collect: collectSlots,
  });

  return {
    sources,
    start() {
      for (const s of sources) s.start();
    },
    async stop() {
      await Promise.all(sources.map((s) => s.stop()));
      // pool.end() waits for a checked-out client; one stuck on a dead link is given up after the bound.
      await withinMs(waitMs, Promise.all([...pools.values()].map((p) => p.end().catch(() => undefined))));
    },
    async ready() {
      return Object.fromEntries(sources.map((s) => [`source:${s.name}`, s.state() === 'streaming']));
    },
  };
}

/**
 * The slot gauges from a pg_replication_slots row. `safe_wal_size` is NULL both when the size is unlimited and when
 * the slot is already lost: the second is told apart by `wal_status` and reported as lost (safe 0), never as -1.
 */
export function slotGauges(r: { lag: string | null; retained: string | null; safe: string | null; wal_status: string | null }) {
  const lost = r.wal_status === 'lost';
  return {
    lag: Number(r.lag ?? 0),
    retained: Number(r.retained ?? 0),
    safe: lost ? 0 : r.safe === null ? -1 : Number(r.safe),
    lost,
  };
}
