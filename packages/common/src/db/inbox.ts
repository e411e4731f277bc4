import { sql } from 'drizzle-orm';
import { index, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import type { SqlClient, SqlPart } from './sql';

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
