/**
 * The monitor's SQL, hand-written: the write path runs once per batch of events (lock, claim + record, load, save),
 * the read paths serve the API, the page and the gauges, the pruner keeps the tables bounded.
 */
import type { EventType } from '@saga/common/contracts/catalog';
import { withTransaction, type SqlClient, type SqlPart, type StatementSink } from '@saga/common/db/sql';
import type pg from 'pg';
import { isStuck, type SagaEvent, type SagaStatus, type SagaSummary } from '../domain/saga';

export type EventRow = SagaEvent & { orderId: string };

/** PostgreSQL text cannot hold NUL: any sender can put one in a header, and it must not make a row unstorable. */
const clean = (s: string | null) => (s === null ? null : s.replaceAll('\u0000', ''));

/**
 * Serialize the transactions that touch the same sagas (two monitor replicas, or a batch racing a redelivery): a
 * summary is computed from every event of its saga, so the second transaction must see the first one's events
 * (READ COMMITTED, the default: each statement after the lock sees what committed before it was granted).
 * Transaction-scoped advisory locks, taken one by one in key order (no deadlock), before anything is recorded.
 */
export async function lockSagas(c: SqlClient, orderIds: readonly string[]): Promise<void> {
  await c.query({
    name: 'monitor.lock-sagas',
    text: `SELECT count(*) FROM (SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(o, 0) AS k FROM unnest($1::text[]) AS o) AS ids ORDER BY k) AS locked`,
    values: [orderIds],
  });
}

/**
 * One statement: claim the messages in the inbox and record the events of the new ones. Answers the ids recorded
 * (a redelivered message is in neither).
 */
export async function recordEvents(c: SqlClient, inbox: SqlPart, rows: readonly EventRow[]): Promise<string[]> {
  const n = inbox.values.length;
  const p = (i: number) => `$${n + 1 + i}`;
  const { rows: out } = await c.query<{ message_id: string }>({
    name: 'monitor.record-events',
    text: `WITH claimed AS (${inbox.text(1)})
           INSERT INTO saga_events (message_id, order_id, type, service, causation_id, traceparent, reason, occurred_at)
           SELECT u.* FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[], ${p(5)}::text[], ${p(6)}::text[], ${p(7)}::timestamptz[])
             AS u(message_id, order_id, type, service, causation_id, traceparent, reason, occurred_at)
           WHERE u.message_id IN (SELECT message_id FROM claimed)
           ON CONFLICT (message_id) DO NOTHING
           RETURNING message_id`,
    values: [
      ...inbox.values,
      rows.map((r) => r.messageId),
      rows.map((r) => clean(r.orderId)),
      rows.map((r) => r.type),
      rows.map((r) => clean(r.service)),
      rows.map((r) => clean(r.causationId)),
      rows.map((r) => clean(r.traceparent)),
      rows.map((r) => clean(r.reason)),
      rows.map((r) => r.at.toISOString()),
    ],
  });
  return out.map((r) => r.message_id);
}

type EventDbRow = {
  message_id: string;
  order_id: string;
  type: EventType;
  service: string;
  causation_id: string | null;
  traceparent: string | null;
  reason: string | null;
  occurred_at: Date;
};
const EVENT_COLUMNS = 'message_id, order_id, type, service, causation_id, traceparent, reason, occurred_at';
const toEvent = (r: EventDbRow): EventRow => ({
  messageId: r.message_id,
  orderId: r.order_id,
  type: r.type,
  service: r.service,
  causationId: r.causation_id,
  traceparent: r.traceparent,
  reason: r.reason,
  at: r.occurred_at,
});

/** Every event recorded of the sagas `orderIds`. */
export async function loadEvents(c: SqlClient, orderIds: readonly string[]): Promise<Map<string, EventRow[]>> {
  const { rows } = await c.query<EventDbRow>({
    name: 'monitor.load-events',
    text: `SELECT ${EVENT_COLUMNS} FROM saga_events WHERE order_id = ANY($1::text[])`,
    values: [orderIds],
  });
  const out = new Map<string, EventRow[]>();
  for (const r of rows) {
    const list = out.get(r.order_id) ?? [];
    list.push(toEvent(r));
    out.set(r.order_id, list);
  }
  return out;
}

/** Write the summaries (one statement). */
export async function saveSagas(
  c: StatementSink,
  sagas: readonly { orderId: string; summary: SagaSummary; events: number }[],
): Promise<void> {
  if (sagas.length === 0) return;
  const col = <T>(f: (s: (typeof sagas)[number]) => T) => sagas.map(f);
  await c.query({
    name: 'monitor.save-sagas',
    text: `INSERT INTO sagas (order_id, status, reason, started_at, finished_at, last_event_at, last_event_type, waiting_service, waiting_step, waiting_events, settled, events)
           SELECT o, s, r, st, fi, la, lt, ws, wp, string_to_array(we, ','), se, n
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::int[])
             AS u(o, s, r, st, fi, la, lt, ws, wp, we, se, n)
           ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, started_at = excluded.started_at,
             finished_at = excluded.finished_at, last_event_at = excluded.last_event_at, last_event_type = excluded.last_event_type,
             waiting_service = excluded.waiting_service, waiting_step = excluded.waiting_step, waiting_events = excluded.waiting_events,
             settled = excluded.settled, events = excluded.events`,
    values: [
      col((s) => s.orderId),
      col((s) => s.summary.status),
      col((s) => s.summary.reason),
      col((s) => s.summary.startedAt?.toISOString() ?? null),
      col((s) => s.summary.finishedAt?.toISOString() ?? null),
      col((s) => s.summary.lastEventAt.toISOString()),
      col((s) => s.summary.lastEventType),
      col((s) => s.summary.waitingFor?.service ?? null),
      col((s) => s.summary.waitingFor?.step ?? null),
      col((s) => s.summary.waitingFor?.events.join(',') ?? null),
      col((s) => s.summary.settled),
      col((s) => s.events),
    ],
  });
}

export type DeadLetterRow = {
  key: string;
  messageId: string;
  queue: string;
  orderId: string | null;
  type: string | null;
  reason: string | null;
  error: string | null;
  at: Date;
};

/** Record dead-letter reports (one statement); a report seen before (same key) changes nothing. */
export async function recordDeadLetters(c: SqlClient, rows: readonly DeadLetterRow[]): Promise<number> {
  const { rowCount } = await c.query({
    name: 'monitor.record-dead-letters',
    text: `INSERT INTO dead_letters (key, message_id, queue, order_id, type, reason, error, at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
           ON CONFLICT (key) DO NOTHING`,
    values: [
      rows.map((r) => clean(r.key)),
      rows.map((r) => clean(r.messageId)),
      rows.map((r) => clean(r.queue)),
      rows.map((r) => clean(r.orderId)),
      rows.map((r) => clean(r.type)),
      rows.map((r) => clean(r.reason)),
      rows.map((r) => clean(r.error)),
      rows.map((r) => r.at.toISOString()),
    ],
  });
  return rowCount ?? 0;
}

export type SagaRow = {
  orderId: string;
  seq: number;
  status: SagaStatus;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  lastEventAt: string;
  lastEventType: string;
  settled: boolean;
  waitingFor: { service: string; step: string; events: string[] } | null;
  events: number;
  stuck: boolean;
};

const SAGA_COLUMNS = `order_id, seq, status, reason, started_at, finished_at, last_event_at, last_event_type, waiting_service, waiting_step, waiting_events, settled, events`;
type SagaDbRow = {
  order_id: string;
  seq: string;
  status: SagaStatus;
  reason: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  last_event_at: Date;
  last_event_type: string;
  waiting_service: string | null;
  waiting_step: string | null;
  waiting_events: string[] | null;
  settled: boolean;
  events: number;
};
const toSaga = (r: SagaDbRow, asOf: Date, stuckAfterMs: number): SagaRow => ({
  orderId: r.order_id,
  seq: Number(r.seq),
  status: r.status,
  reason: r.reason,
  startedAt: r.started_at?.toISOString() ?? null,
  finishedAt: r.finished_at?.toISOString() ?? null,
  durationMs: r.started_at && r.finished_at ? r.finished_at.getTime() - r.started_at.getTime() : null,
  lastEventAt: r.last_event_at.toISOString(),
  lastEventType: r.last_event_type,
  settled: r.settled,
  waitingFor: r.waiting_service
    ? { service: r.waiting_service, step: r.waiting_step ?? '', events: r.waiting_events ?? [] }
    : null,
  events: r.events,
  stuck: isStuck({ settled: r.settled, lastEventAt: r.last_event_at }, asOf, stuckAfterMs),
});

export type SagaState = 'pending' | 'stuck' | 'confirmed' | 'cancelled';
export type Staleness = { asOf: Date; stuckAfterMs: number };

/**
 * Sagas, keyset-paginated by arrival (`after` = the last `seq` of the previous page), newest first; stuck ones
 * oldest-quiet first (the longest-stuck matter most). `pending`: not settled and not stuck; `stuck`: not settled and
 * quiet for `stuckAfterMs` as of `asOf` (the same rule as isStuck).
 */
export async function listSagas(
  pool: pg.Pool,
  q: { state?: SagaState; limit: number; after?: number } & Staleness,
): Promise<SagaRow[]> {
  const cutoff = new Date(q.asOf.getTime() - q.stuckAfterMs).toISOString();
  const where: Record<SagaState, string> = {
    pending: `NOT settled AND last_event_at >= $1::timestamptz`,
    stuck: `NOT settled AND last_event_at < $1::timestamptz`,
    confirmed: `status = 'CONFIRMED'`,
    cancelled: `status = 'CANCELLED'`,
  };
  const order = q.state === 'stuck' ? 'last_event_at, seq DESC' : 'seq DESC';
  const { rows } = await pool.query<SagaDbRow>(
    `SELECT ${SAGA_COLUMNS} FROM sagas
     WHERE ${q.state ? where[q.state] : '$1::timestamptz IS NOT NULL'} AND ($2::bigint IS NULL OR seq < $2::bigint)
     ORDER BY ${order} LIMIT $3`,
    [cutoff, q.after ?? null, q.limit],
  );
  return rows.map((r) => toSaga(r, q.asOf, q.stuckAfterMs));
}

/** One saga with its events and the dead-letter reports of it, read in one snapshot (they agree with each other). */
export async function getSaga(
  pool: pg.Pool,
  orderId: string,
  s: Staleness,
): Promise<{ saga: SagaRow; events: EventRow[]; deadLetters: DeadLetterRow[] } | undefined> {
  return withTransaction(pool, async (c) => {
    await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await c.query<SagaDbRow>(`SELECT ${SAGA_COLUMNS} FROM sagas WHERE order_id = $1`, [orderId]);
    if (!rows[0]) return undefined;
    const events = await c.query<EventDbRow>(`SELECT ${EVENT_COLUMNS} FROM saga_events WHERE order_id = $1`, [orderId]);
    const dead = await c.query<{
      key: string;
      message_id: string;
      queue: string;
      order_id: string | null;
      type: string | null;
      reason: string | null;
      error: string | null;
      at: Date;
    }>(
      `SELECT key, message_id, queue, order_id, type, reason, error, at FROM dead_letters WHERE order_id = $1 ORDER BY at`,
      [orderId],
    );
    return {
      saga: toSaga(rows[0], s.asOf, s.stuckAfterMs),
      events: events.rows.map(toEvent),
      deadLetters: dead.rows.map((r) => ({
        key: r.key,
        messageId: r.message_id,
        queue: r.queue,
        orderId: r.order_id,
        type: r.type,
        reason: r.reason,
        error: r.error,
        at: r.at,
      })),
    };
  });
}

/**
 * Dead-letter reports that may explain why these sagas wait: those of a message dead-lettered since the saga's last
 * event (an older one was replayed or is not what it waits for).
 */
export async function deadLettersOf(
  pool: pg.Pool,
  sagas: readonly { orderId: string; lastEventAt: string }[],
): Promise<Map<string, { queue: string; type: string | null; reason: string | null; at: string }[]>> {
  const out = new Map<string, { queue: string; type: string | null; reason: string | null; at: string }[]>();
  if (sagas.length === 0) return out;
  const { rows } = await pool.query<{
    order_id: string;
    queue: string;
    type: string | null;
    reason: string | null;
    at: Date;
  }>(
    `SELECT d.order_id, d.queue, d.type, d.reason, d.at
     FROM unnest($1::text[], $2::timestamptz[]) AS s(order_id, last_event_at)
     JOIN dead_letters d ON d.order_id = s.order_id AND d.at >= s.last_event_at
     ORDER BY d.at`,
    [sagas.map((s) => s.orderId), sagas.map((s) => s.lastEventAt)],
  );
  for (const r of rows)
    out.set(r.order_id, [
      ...(out.get(r.order_id) ?? []),
      { queue: r.queue, type: r.type, reason: r.reason, at: r.at.toISOString() },
    ]);
  return out;
}

/** What the gauges and the page's counters report: unsettled and stuck sagas, the oldest one's age, recent outcomes. */
export async function stats(
  pool: pg.Pool,
  s: Staleness,
): Promise<{
  pending: number;
  stuck: number;
  oldestPendingSeconds: number;
  confirmedLastHour: number;
  cancelledLastHour: number;
}> {
  const cutoff = new Date(s.asOf.getTime() - s.stuckAfterMs).toISOString();
  // Two index-only reads: unsettled sagas (sagas_unsettled_idx) and those finished in the last hour (sagas_finished_idx).
  const { rows } = await pool.query<{
    stuck: string;
    unsettled: string;
    oldest: number | null;
    confirmed: string;
    cancelled: string;
  }>(
    `SELECT u.stuck, u.unsettled, u.oldest, f.confirmed, f.cancelled
     FROM (SELECT count(*) FILTER (WHERE last_event_at < $1::timestamptz) AS stuck, count(*) AS unsettled,
                  extract(epoch FROM now() - min(coalesce(started_at, last_event_at)))::float8 AS oldest
           FROM sagas WHERE NOT settled) AS u,
          (SELECT count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed, count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled
           FROM sagas WHERE finished_at > now() - interval '1 hour') AS f`,
    [cutoff],
  );
  const r = rows[0]!;
  return {
    stuck: Number(r.stuck),
    pending: Number(r.unsettled) - Number(r.stuck),
    oldestPendingSeconds: Math.max(0, r.oldest ?? 0),
    confirmedLastHour: Number(r.confirmed),
    cancelledLastHour: Number(r.cancelled),
  };
}

/**
 * Forget settled sagas (and their events) whose last event is older than `retentionHours`, and dead-letter reports as
 * old, at most `limit` sagas per call. Unsettled sagas stay whatever their age: they are what an operator looks for.
 */
export async function pruneSettled(
  pool: pg.Pool,
  retentionHours: number,
  limit = 2000,
): Promise<{ sagas: number; deadLetters: number }> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<{ n: string }>(
      `WITH gone AS (DELETE FROM sagas WHERE order_id IN (
                SELECT order_id FROM sagas WHERE settled AND last_event_at < now() - make_interval(hours => $1) LIMIT $2)
              RETURNING order_id),
            events AS (DELETE FROM saga_events WHERE order_id IN (SELECT order_id FROM gone))
       SELECT count(*) AS n FROM gone`,
      [retentionHours, limit],
    );
    const dead = await c.query(
      `DELETE FROM dead_letters WHERE key IN (SELECT key FROM dead_letters WHERE at < now() - make_interval(hours => $1) LIMIT $2)`,
      [retentionHours, limit],
    );
    return { sagas: Number(rows[0]!.n), deadLetters: dead.rowCount ?? 0 };
  });
}
