import { randomUUID } from 'node:crypto';
import { index, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { CURRENT_VERSION, EventCatalog, schemaFor, type DomainEvent, type EventHeaders } from '../contracts/catalog';
import type { SqlClient, SqlPart } from './sql';

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
 * With no events it inserts nothing, so a statement keeps one shape whatever the batch decided. `onlyAggregatesIn`,
 * an SQL expression giving text ids (a subquery of a CTE), keeps the rows of those aggregates only: the statement
 * writes the events of what it actually inserted.
 */
export function outboxInsert(entries: readonly OutboxEntry[], onlyAggregatesIn?: string): SqlPart {
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
       SELECT * FROM unnest($${p}::uuid[], $${p + 1}::text[], $${p + 2}::text[], $${p + 3}::text[], $${p + 4}::jsonb[], $${p + 5}::jsonb[])
         AS u(id, aggregatetype, aggregateid, type, payload, headers)${onlyAggregatesIn ? ` WHERE u.aggregateid IN (${onlyAggregatesIn})` : ''}`,
    values: cols,
  };
}
