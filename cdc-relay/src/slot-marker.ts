/**
 * The slot marker: a row per relay slot in the source database itself, saying that the slot existed and how far the
 * relay got (the last acknowledged LSN and commit time). A replication slot is server state: dropped by an operator,
 * invalidated, or absent on a standby that was promoted, it leaves no trace, and a slot created again starts at the
 * current position, skipping every row written in between. The marker is an ordinary table: it survives restarts of
 * the relay, and physical replication carries it to a standby. Where it says a slot existed and the slot is gone,
 * nobody creates the slot silently (slots.ts): the operator recovers it (`npm run relay -- recover`), which
 * reconciles from the stored commit time.
 *
 * It lives in a schema of its own (`cdc_relay`), created by migrate: the relay's role may read and update it
 * (SELECT, INSERT, UPDATE), the services' roles, which get every table of `public`, do not see it.
 */
import pg from 'pg';
import type { Logger } from '@saga/common/runtime/logger';
import { settleWithin } from '@saga/common/runtime/settle';
import { formatLsn } from './lsn';

export const MARKER_TABLE = 'cdc_relay.slot_marker';

/** The schema, the table and the relay role's grant; idempotent, run by migrate as an administrator. */
export function markerDdl(relayRole: string): string[] {
  const role = pg.escapeIdentifier(relayRole);
  return [
    'CREATE SCHEMA IF NOT EXISTS cdc_relay',
    `CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (
       slot_name text PRIMARY KEY,
       created_at timestamptz NOT NULL DEFAULT now(),
       first_streamed_at timestamptz,
       acked_lsn pg_lsn,
       acked_commit_time timestamptz,
       updated_at timestamptz NOT NULL DEFAULT now())`,
    'REVOKE ALL ON SCHEMA cdc_relay FROM PUBLIC',
    `GRANT USAGE ON SCHEMA cdc_relay TO ${role}`,
    `GRANT SELECT, INSERT, UPDATE ON ${MARKER_TABLE} TO ${role}`,
  ];
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * A statement bounded by `timeoutMs` (pg's client-side query_timeout: it also fires when the server never answers, as
 * on a half-open link or behind a lock, where statement_timeout would need the server to run). Unbounded without it.
 */
export const bounded = (text: string, values: unknown[], timeoutMs: number | undefined): pg.QueryConfig =>
  ({ text, values, ...(timeoutMs ? { query_timeout: timeoutMs } : {}) }) as pg.QueryConfig;

/**
 * When the slot's events were last known to be published: the commit time of the last acknowledged transaction,
 * else when its marker was made (next to the slot's creation). Not when it was first streamed: a relay that streamed
 * but never acknowledged (the broker down) moved the slot nowhere, so rows from the slot's creation on may be missing. Undefined
 * when there is no marker: the slot never existed here (a first install).
 */
export async function readMarker(
  c: Queryable,
  slot: string,
  timeoutMs?: number,
): Promise<{ reconcileFrom: Date; streamed: boolean } | undefined> {
  const { rows } = await c.query<{ since: Date; streamed: boolean }>(
    bounded(
      `SELECT COALESCE(acked_commit_time, created_at) AS since, first_streamed_at IS NOT NULL AS streamed
         FROM ${MARKER_TABLE} WHERE slot_name = $1`,
      [slot],
      timeoutMs,
    ),
  );
  return rows[0] && { reconcileFrom: rows[0].since, streamed: rows[0].streamed };
}

/** The slot exists (it was just created, or it is streamed): make sure its marker does. `timeoutMs` bounds it. */
export async function ensureMarker(c: Queryable, slot: string, streamed: boolean, timeoutMs?: number): Promise<void> {
  await c.query(
    bounded(
      streamed
        ? `INSERT INTO ${MARKER_TABLE} AS m (slot_name, first_streamed_at) VALUES ($1, now())
           ON CONFLICT (slot_name) DO UPDATE SET first_streamed_at = now(), updated_at = now()
           WHERE m.first_streamed_at IS NULL`
        : `INSERT INTO ${MARKER_TABLE} (slot_name) VALUES ($1) ON CONFLICT (slot_name) DO NOTHING`,
      [slot],
      timeoutMs,
    ),
  );
}

/** After a recovery: the slot was created again now, its position is the present. */
export async function resetMarker(c: Queryable, slot: string): Promise<void> {
  await c.query(
    `UPDATE ${MARKER_TABLE} SET created_at = now(), first_streamed_at = NULL, acked_lsn = NULL,
            acked_commit_time = NULL, updated_at = now() WHERE slot_name = $1`,
    [slot],
  );
}

export type MarkerWriter = {
  /** An acknowledgement was sent: `lsn`, and the commit time (µs since the epoch) of the last transaction it covers. */
  note: (lsn: bigint, commitTimeUs: bigint | undefined) => void;
  /** Write what is noted and not written yet, then close. */
  stop: () => Promise<void>;
};

/** How long a stop waits for the marker's last write and its connection's end, all told. */
export const MARKER_STOP_MS = 2_000;

/**
 * Keeps the marker's position up to date, cheaply: at most one UPDATE per `intervalMs`, only when the acknowledged
 * commit time moved (a keepalive acknowledgement moves the LSN past the relay's own marker writes, which would
 * otherwise write forever on an idle outbox), never awaited by the stream, one at a time. The marker lags the slot by
 * up to `intervalMs`: a reconcile from it republishes a little more than was missing, never less.
 */
export function createMarkerWriter(o: {
  url: string;
  slot: string;
  applicationName: string;
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
}): MarkerWriter {
  const pool = new pg.Pool({
    connectionString: o.url,
    max: 1,
    idleTimeoutMillis: Math.max(o.intervalMs * 2, 10_000),
    application_name: `${o.applicationName} marker`,
    connectionTimeoutMillis: o.timeoutMs,
    query_timeout: o.timeoutMs,
  } as pg.PoolConfig);
  pool.on('error', (err) => o.log.debug({ err }, 'slot marker connection failed'));
  let noted: { lsn: bigint; commitUs: bigint } | undefined;
  let written: bigint | undefined;
  let writing: Promise<void> | undefined;
  const write = () => {
    if (writing || !noted || noted.commitUs === written) return writing;
    const { lsn, commitUs } = noted;
    writing = pool
      .query(
        `UPDATE ${MARKER_TABLE} SET acked_lsn = $2::pg_lsn, acked_commit_time = to_timestamp($3::float8 / 1e6),
                updated_at = now() WHERE slot_name = $1`,
        [o.slot, formatLsn(lsn), String(commitUs)],
      )
      .then(
        () => void (written = commitUs),
        (err: unknown) => o.log.warn({ err, slot: o.slot }, 'could not update the slot marker; will try again'),
      )
      .finally(() => (writing = undefined));
    return writing;
  };
  const timer = setInterval(() => void write(), o.intervalMs);
  timer.unref();
  return {
    note(lsn, commitUs) {
      if (commitUs !== undefined) noted = { lsn, commitUs };
    },
    /**
     * The last position is written if it moved, within MARKER_STOP_MS all told: a database that does not answer
     * must not hold the relay's stop (the write's own bound is the replication timeout, 60 s by default). A marker
     * left behind is older, never ahead: a reconcile from it republishes a little more.
     */
    async stop() {
      clearInterval(timer);
      const last = async () => {
        await writing;
        await write();
      };
      const stopBy = Date.now() + MARKER_STOP_MS;
      await settleWithin(last(), MARKER_STOP_MS - 500, 'slot marker write').catch((err: unknown) =>
        o.log.warn({ err, slot: o.slot }, 'slot marker not updated at stop'),
      );
      await settleWithin(pool.end(), Math.max(0, stopBy - Date.now()), 'slot marker pool end').catch(() => undefined);
    },
  };
}
