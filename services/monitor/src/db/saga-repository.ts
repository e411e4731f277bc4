/**
 * The monitor's SQL, hand-written: the write path runs once per batch of events (claim + record, load, save), the
 * read paths serve the API and the page.
 */
import type { EventType } from '@saga/common/contracts';
import type { SqlClient, SqlPart } from '@saga/common/outbox';
import type pg from 'pg';
import type { SagaEvent, SagaStatus, SagaSummary } from '../domain/saga';

export type EventRow = SagaEvent & { orderId: string };

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
      rows.map((r) => r.orderId),
      rows.map((r) => r.type),
      rows.map((r) => r.service),
      rows.map((r) => r.causationId),
      rows.map((r) => r.traceparent),
      rows.map((r) => r.reason),
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

/**
 * Serialize the transactions that touch the same sagas (two monitor replicas, or a batch racing a redelivery): a
 * summary is computed from every event of its saga, so the second transaction must see the first one's events.
 * Transaction-scoped advisory locks, taken in id order (no deadlock), before anything is recorded.
 */
export async function lockSagas(c: SqlClient, orderIds: readonly string[]): Promise<void> {
  await c.query({
    name: 'monitor.lock-sagas',
    text: `SELECT count(pg_advisory_xact_lock(hashtextextended(o, 0))) FROM (SELECT DISTINCT o FROM unnest($1::text[]) AS o ORDER BY o) AS ids`,
    values: [orderIds],
  });
}

/** Every event recorded of the sagas `orderIds`. */
export async function loadEvents(c: SqlClient, orderIds: readonly string[]): Promise<Map<string, EventRow[]>> {
  const { rows } = await c.query<EventDbRow>({
    name: 'monitor.load-events',
    text: `SELECT message_id, order_id, type, service, causation_id, traceparent, reason, occurred_at
           FROM saga_events WHERE order_id = ANY($1::text[])`,
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
export async function saveSagas(c: SqlClient, sagas: readonly { orderId: string; summary: SagaSummary; events: number }[]): Promise<void> {
  if (sagas.length === 0) return;
  const col = <T>(f: (s: (typeof sagas)[number]) => T) => sagas.map(f);
  await c.query({
    name: 'monitor.save-sagas',
    text: `INSERT INTO sagas (order_id, status, reason, started_at, finished_at, last_event_at, last_event_type, waiting_service, waiting_step, waiting_events, events)
           SELECT o, s, r, st, fi, la, lt, ws, wp, string_to_array(we, ','), n
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int[])
             AS u(o, s, r, st, fi, la, lt, ws, wp, we, n)
           ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, started_at = excluded.started_at,
             finished_at = excluded.finished_at, last_event_at = excluded.last_event_at, last_event_type = excluded.last_event_type,
             waiting_service = excluded.waiting_service, waiting_step = excluded.waiting_step, waiting_events = excluded.waiting_events,
             events = excluded.events`,
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
      col((s) => s.events),
    ],
  });
}

export type DeadLetterRow = { messageId: string; queue: string; orderId: string | null; type: string | null; reason: string | null; error: string | null; at: Date };

/** One statement: claim the dead-letter reports in the inbox and record the new ones. */
export async function recordDeadLetters(c: SqlClient, inbox: SqlPart, rows: readonly (DeadLetterRow & { key: string })[]): Promise<number> {
  const n = inbox.values.length;
  const p = (i: number) => `$${n + 1 + i}`;
  const { rowCount } = await c.query({
    name: 'monitor.record-dead-letters',
    text: `WITH claimed AS (${inbox.text(1)})
           INSERT INTO dead_letters (message_id, queue, order_id, type, reason, error, at)
           SELECT u.message_id, u.queue, u.order_id, u.type, u.reason, u.error, u.at
           FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[], ${p(5)}::text[], ${p(6)}::timestamptz[], ${p(7)}::text[])
             AS u(message_id, queue, order_id, type, reason, error, at, key)
           WHERE u.key IN (SELECT message_id FROM claimed)`,
    values: [
      ...inbox.values,
      rows.map((r) => r.messageId),
      rows.map((r) => r.queue),
      rows.map((r) => r.orderId),
      rows.map((r) => r.type),
      rows.map((r) => r.reason),
      rows.map((r) => r.error),
      rows.map((r) => r.at.toISOString()),
      rows.map((r) => r.key),
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
  waitingFor: { service: string; step: string; events: string[] } | null;
  events: number;
  stuck: boolean;
};

const SAGA_COLUMNS = `order_id, seq, status, reason, started_at, finished_at, last_event_at, last_event_type, waiting_service, waiting_step,
  waiting_events, events, (status = 'PENDING' AND last_event_at < now() - make_interval(secs => $1::float8 / 1000)) AS stuck`;
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
  events: number;
  stuck: boolean;
};
const toSaga = (r: SagaDbRow): SagaRow => ({
  orderId: r.order_id,
  seq: Number(r.seq),
  status: r.status,
  reason: r.reason,
  startedAt: r.started_at?.toISOString() ?? null,
  finishedAt: r.finished_at?.toISOString() ?? null,
  durationMs: r.started_at && r.finished_at ? r.finished_at.getTime() - r.started_at.getTime() : null,
  lastEventAt: r.last_event_at.toISOString(),
  lastEventType: r.last_event_type,
  waitingFor: r.waiting_service ? { service: r.waiting_service, step: r.waiting_step ?? '', events: r.waiting_events ?? [] } : null,
  events: r.events,
  stuck: r.stuck,
});

export type SagaState = 'pending' | 'stuck' | 'confirmed' | 'cancelled';

/**
 * Sagas, newest first, keyset-paginated by arrival (`after` = the last `seq` of the previous page). `pending` is in
 * flight and not stuck; `stuck` is pending with nothing happening for `stuckAfterMs`.
 */
export async function listSagas(pool: pg.Pool, q: { state?: SagaState; limit: number; after?: number; stuckAfterMs: number }): Promise<SagaRow[]> {
  const where: Record<SagaState, string> = {
    pending: `status = 'PENDING' AND last_event_at >= now() - make_interval(secs => $1::float8 / 1000)`,
    stuck: `status = 'PENDING' AND last_event_at < now() - make_interval(secs => $1::float8 / 1000)`,
    confirmed: `status = 'CONFIRMED'`,
    cancelled: `status = 'CANCELLED'`,
  };
  const { rows } = await pool.query<SagaDbRow>(
    `SELECT ${SAGA_COLUMNS} FROM sagas
     WHERE ${q.state ? where[q.state] : 'true'} AND ($2::bigint IS NULL OR seq < $2::bigint)
     ORDER BY seq DESC LIMIT $3`,
    [q.stuckAfterMs, q.after ?? null, q.limit],
  );
  return rows.map(toSaga);
}

export async function getSaga(pool: pg.Pool, orderId: string, stuckAfterMs: number): Promise<{ saga: SagaRow; events: EventRow[]; deadLetters: DeadLetterRow[] } | undefined> {
  const { rows } = await pool.query<SagaDbRow>(`SELECT ${SAGA_COLUMNS} FROM sagas WHERE order_id = $2`, [stuckAfterMs, orderId]);
  if (!rows[0]) return undefined;
  const events = await pool.query<EventDbRow>(
    `SELECT message_id, order_id, type, service, causation_id, traceparent, reason, occurred_at FROM saga_events WHERE order_id = $1`,
    [orderId],
  );
  const dead = await pool.query<{ message_id: string; queue: string; order_id: string | null; type: string | null; reason: string | null; error: string | null; at: Date }>(
    `SELECT message_id, queue, order_id, type, reason, error, at FROM dead_letters WHERE order_id = $1 ORDER BY at`,
    [orderId],
  );
  return {
    saga: toSaga(rows[0]),
    events: events.rows.map(toEvent),
    deadLetters: dead.rows.map((r) => ({ messageId: r.message_id, queue: r.queue, orderId: r.order_id, type: r.type, reason: r.reason, error: r.error, at: r.at })),
  };
}

/** Dead-letter reports of the sagas `orderIds` (for the stuck list). */
export async function deadLettersOf(pool: pg.Pool, orderIds: readonly string[]): Promise<Map<string, { queue: string; type: string | null; reason: string | null }[]>> {
  const out = new Map<string, { queue: string; type: string | null; reason: string | null }[]>();
  if (orderIds.length === 0) return out;
  const { rows } = await pool.query<{ order_id: string; queue: string; type: string | null; reason: string | null }>(
    `SELECT order_id, queue, type, reason FROM dead_letters WHERE order_id = ANY($1::text[]) ORDER BY at`,
    [orderIds],
  );
  for (const r of rows) out.set(r.order_id, [...(out.get(r.order_id) ?? []), { queue: r.queue, type: r.type, reason: r.reason }]);
  return out;
}

/** What the gauges report: sagas stuck now, and the age of the oldest pending saga. */
export async function pendingStats(pool: pg.Pool, stuckAfterMs: number): Promise<{ stuck: number; pending: number; oldestPendingSeconds: number }> {
  const { rows } = await pool.query<{ stuck: string; pending: string; oldest: number | null }>(
    `SELECT count(*) FILTER (WHERE last_event_at < now() - make_interval(secs => $1::float8 / 1000)) AS stuck, count(*) AS pending,
            extract(epoch FROM now() - min(coalesce(started_at, last_event_at)))::float8 AS oldest
     FROM sagas WHERE status = 'PENDING'`,
    [stuckAfterMs],
  );
  const r = rows[0]!;
  return { stuck: Number(r.stuck), pending: Number(r.pending), oldestPendingSeconds: r.oldest ?? 0 };
}

/** Sagas per status. */
export async function statusCounts(pool: pg.Pool): Promise<Record<'pending' | 'confirmed' | 'cancelled', number>> {
  const { rows } = await pool.query<{ status: SagaStatus; n: string }>(`SELECT status, count(*) AS n FROM sagas GROUP BY status`);
  const n = (s: SagaStatus) => Number(rows.find((r) => r.status === s)?.n ?? 0);
  return { pending: n('PENDING'), confirmed: n('CONFIRMED'), cancelled: n('CANCELLED') };
}
