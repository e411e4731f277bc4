import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { index, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { CURRENT_VERSION, EventCatalog, schemaFor, type DomainEvent, type EventHeaders } from './contracts';

/**
 * The outbox, with the column names Debezium's Outbox Event Router expects: with the configuration in docs/debezium,
 * Debezium Server can replace the relay and the consumers accept its messages (what else changes is in the README,
 * "Replacing the relay with Debezium"). Rows stay for a retention window (OUTBOX_RETENTION_HOURS) and are pruned in
 * batches by the service (`pruneOutbox`): the relay never reads the table (it streams the INSERTs from the WAL), but
 * after a database failover or a lost slot the rows are the only copy of the events the WAL no longer has for the
 * relay, and `npm run relay -- reconcile` republishes them from here. The publication publishes inserts only, so
 * pruning publishes nothing.
 */
export const outbox = pgTable(
  'outbox',
  {
    id: uuid('id').primaryKey(),
    aggregatetype: text('aggregatetype').notNull(),
    aggregateid: text('aggregateid').notNull(),
    type: text('type').notNull(),
    payload: jsonb('payload').notNull(),
    headers: jsonb('headers').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  // Pruning by age and reconciling a time window both read by created_at.
  (t) => [index('outbox_created_idx').on(t.createdAt)],
);

/** Ids of messages a consumer has applied: the dedupe half of exactly-once-in-effect. */
export const inbox = pgTable(
  'inbox',
  {
    consumer: text('consumer').notNull(),
    messageId: text('message_id').notNull(),
    eventType: text('event_type').notNull(),
    processedAt: timestamp('processed_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [
    primaryKey({ columns: [t.consumer, t.messageId] }),
    index('inbox_processed_idx').on(t.consumer, t.processedAt),
  ],
);

/**
 * Forget what `consumer` applied longer ago than `retentionHours`, at most `limit` rows per call. A broker redelivers
 * within minutes (an unacknowledged message, a relay's unconfirmed tail), so days of memory are plenty, and without
 * a bound the inbox (and its index, written by every message) grows forever. Answers how many rows went.
 */
export async function pruneInbox(
  c: SqlClient,
  consumer: string,
  retentionHours: number,
  limit = 5000,
): Promise<number> {
  const { rowCount } = await c.query({
    name: 'inbox.prune',
    text: `DELETE FROM inbox WHERE consumer = $1 AND message_id IN (
             SELECT message_id FROM inbox WHERE consumer = $1 AND processed_at < now() - make_interval(hours => $2) LIMIT $3)`,
    values: [consumer, retentionHours, limit],
  });
  return rowCount ?? 0;
}

/**
 * Delete outbox rows older than `retentionHours`, at most `limit` per call (one short transaction, so pruning never
 * holds locks or bloats WAL in one burst). Answers how many rows went; the caller repeats while a full batch went.
 */
export async function pruneOutbox(c: SqlClient, retentionHours: number, limit = 5000): Promise<number> {
  const { rowCount } = await c.query({
    name: 'outbox.prune',
    text: `DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox WHERE created_at < now() - make_interval(hours => $1) ORDER BY created_at LIMIT $2)`,
    values: [retentionHours, limit],
  });
  return rowCount ?? 0;
}

// Any drizzle database or transaction on node-postgres (the read paths).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tx = PgDatabase<PgQueryResultHKT, any, any>;

/** A node-postgres connection inside a transaction (the write paths: hand-written, prepared statements). */
export type SqlClient = Pick<pg.ClientBase, 'query'>;

/**
 * Part of one statement: SQL text whose parameters are numbered from `first`, and their values. Statements are
 * assembled from parts so that a step costs one round trip; the text is the same for every call, so a named
 * (prepared) statement can carry it.
 */
export type SqlPart = { text: (first: number) => string; values: unknown[] };

export type OutboxMeta = {
  /** The order id: every event of one saga shares it. */
  correlationId: string;
  /** The id of the message that caused these events; null for an HTTP command. */
  causationId: string | null;
  traceparent?: string;
  /** Id generator, injectable for tests. */
  newId?: () => string;
};

export type OutboxEntry = { events: readonly DomainEvent[]; meta: OutboxMeta };

/**
 * The outbox rows of `entries` as one INSERT (a part of a statement, usually a CTE). Each event is validated
 * against its contract first: a bad event fails the producing transaction instead of a consumer three hops later.
 * With no events it inserts nothing, so a statement keeps one shape whatever the batch decided.
 */
export function outboxInsert(entries: readonly OutboxEntry[]): SqlPart {
  const cols: [string[], string[], string[], string[], string[], string[]] = [[], [], [], [], [], []];
  for (const { events, meta } of entries) {
    const newId = meta.newId ?? randomUUID;
    // occurredAt: millisecond time of the event for timelines (the AMQP timestamp property holds whole seconds).
    const headers: EventHeaders = {
      correlationId: meta.correlationId,
      causationId: meta.causationId,
      occurredAt: new Date().toISOString(),
    };
    if (meta.traceparent) headers.traceparent = meta.traceparent;
    const headersJson = JSON.stringify(headers);
    for (const e of events) {
      const data = schemaFor(e.type, CURRENT_VERSION).parse(e.data) as { orderId?: string };
      cols[0].push(newId());
      cols[1].push(EventCatalog[e.type].aggregateType);
      cols[2].push(String(data.orderId ?? meta.correlationId));
      cols[3].push(e.type);
      cols[4].push(JSON.stringify({ version: CURRENT_VERSION, data }));
      cols[5].push(headersJson);
    }
  }
  return {
    text: (p) =>
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
       SELECT * FROM unnest($${p}::uuid[], $${p + 1}::text[], $${p + 2}::text[], $${p + 3}::text[], $${p + 4}::jsonb[], $${p + 5}::jsonb[])`,
    values: cols,
  };
}

/**
 * Claim messages for `consumer` in the inbox (a part of a statement, usually a CTE): `RETURNING message_id` names
 * the ones not seen before; the others must change nothing. Rows are inserted in message-id order so that two
 * transactions claiming overlapping batches lock them in the same order.
 */
export function inboxClaim(consumer: string, messages: readonly { id: string; type: string }[]): SqlPart {
  return {
    text: (p) =>
      `INSERT INTO inbox (consumer, message_id, event_type)
       SELECT $${p}, m, t FROM unnest($${p + 1}::text[], $${p + 2}::text[]) AS u(m, t) ORDER BY m
       ON CONFLICT DO NOTHING RETURNING message_id`,
    values: [consumer, messages.map((m) => m.id), messages.map((m) => m.type)],
  };
}

/** One transaction on one pooled connection; the connection is dropped, not reused, when it failed. */
export async function withTransaction<R>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<R>): Promise<R> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    throw err;
  } finally {
    client.release(broken);
  }
}
