import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { CURRENT_VERSION, EventCatalog, schemaFor, type DomainEvent, type EventHeaders } from './contracts';

/**
 * The outbox, with the column names Debezium's Outbox Event Router expects, so the relay can be swapped for
 * Debezium without touching a service. Rows are deleted in the transaction that inserts them: logical decoding
 * still sees the INSERT, and the table never grows.
 */
export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey(),
  aggregatetype: text('aggregatetype').notNull(),
  aggregateid: text('aggregateid').notNull(),
  type: text('type').notNull(),
  payload: jsonb('payload').notNull(),
  headers: jsonb('headers').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Ids of messages a consumer has applied: the dedupe half of exactly-once-in-effect. */
export const inbox = pgTable(
  'inbox',
  {
    consumer: text('consumer').notNull(),
    messageId: text('message_id').notNull(),
    eventType: text('event_type').notNull(),
    processedAt: timestamp('processed_at', { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.messageId] })],
);

// Any drizzle database or transaction on node-postgres.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Tx = PgDatabase<PgQueryResultHKT, any, any>;

export type OutboxMeta = {
  /** The order id: every event of one saga shares it. */
  correlationId: string;
  /** The id of the message that caused these events; null for an HTTP command. */
  causationId: string | null;
  traceparent?: string;
  /** Id generator, injectable for tests. */
  newId?: () => string;
};

/**
 * Write one outbox row per event inside the caller's transaction, then delete them in the same transaction.
 * Each event is validated against its contract first: a bad event fails the producing transaction instead of a
 * consumer three hops later. Returns the ids written.
 */
export async function appendToOutbox(tx: Tx, events: readonly DomainEvent[], meta: OutboxMeta): Promise<string[]> {
  if (events.length === 0) return [];
  const newId = meta.newId ?? randomUUID;
  const headers: EventHeaders = { correlationId: meta.correlationId, causationId: meta.causationId };
  if (meta.traceparent) headers.traceparent = meta.traceparent;
  const rows = events.map((e) => {
    const data = schemaFor(e.type, CURRENT_VERSION).parse(e.data) as { orderId?: string };
    return {
      id: newId(),
      aggregatetype: EventCatalog[e.type].aggregateType,
      aggregateid: String(data.orderId ?? meta.correlationId),
      type: e.type,
      payload: { version: CURRENT_VERSION, data },
      headers,
    };
  });
  await tx.insert(outbox).values(rows);
  const ids = rows.map((r) => r.id);
  await tx.execute(sql`DELETE FROM outbox WHERE id IN (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`);
  return ids;
}

/**
 * Record that `consumer` applied `messageId`. False when it already had: the caller must then change nothing.
 * Must run in the same transaction as the business rows and the outbox rows.
 */
export async function tryMarkProcessed(tx: Tx, consumer: string, messageId: string, eventType: string): Promise<boolean> {
  const inserted = await tx
    .insert(inbox)
    .values({ consumer, messageId, eventType })
    .onConflictDoNothing()
    .returning({ id: inbox.messageId });
  return inserted.length === 1;
}
