import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

// The monitor publishes nothing, so it has an inbox (exactly-once in effect) and no outbox.
export { inbox } from '@saga/common/db/inbox';

/** Every saga event the monitor has seen, once (the inbox dedupes redeliveries). */
export const sagaEvents = pgTable(
  'saga_events',
  {
    messageId: text('message_id').primaryKey(),
    orderId: text('order_id').notNull(),
    type: text('type').notNull(),
    service: text('service').notNull(),
    causationId: text('causation_id'),
    traceparent: text('traceparent'),
    reason: text('reason'),
    /** When the producer wrote the event (its outbox row), or when the monitor saw it if the producer did not say. */
    occurredAt: timestamp('occurred_at', { withTimezone: true, precision: 3 }).notNull(),
    observedAt: timestamp('observed_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [index('saga_events_order_idx').on(t.orderId)],
);

/** One row per saga: its state as derived from its events (summarize), rewritten when an event of it arrives. */
export const sagas = pgTable(
  'sagas',
  {
    orderId: text('order_id').primaryKey(),
    /** Arrival order of sagas: the keyset of the list's pagination. */
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity().notNull(),
    status: text('status', { enum: ['PENDING', 'CONFIRMED', 'CANCELLED'] }).notNull(),
    reason: text('reason'),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }),
    finishedAt: timestamp('finished_at', { withTimezone: true, precision: 3 }),
    lastEventAt: timestamp('last_event_at', { withTimezone: true, precision: 3 }).notNull(),
    lastEventType: text('last_event_type').notNull(),
    waitingService: text('waiting_service'),
    waitingStep: text('waiting_step'),
    waitingEvents: text('waiting_events').array(),
    /** Nothing more is due (final, and inventory followed up); unsettled sagas can be stuck. */
    settled: boolean('settled').notNull(),
    events: integer('events').notNull(),
  },
  (t) => [
    index('sagas_seq_idx').on(t.seq),
    // Stuck detection, the pending gauges and the list of unsettled sagas read only these rows.
    index('sagas_unsettled_idx')
      .on(t.lastEventAt)
      .where(sql`NOT settled`),
    index('sagas_status_seq_idx').on(t.status, t.seq),
    // Counts of recent outcomes (the page) and retention of settled sagas.
    index('sagas_settled_last_idx')
      .on(t.lastEventAt)
      .where(sql`settled`),
    index('sagas_finished_idx').on(t.finishedAt),
  ],
);

/** Dead-lettered saga messages, as each consumer reported them when it parked one: why a saga may be stuck. */
export const deadLetters = pgTable(
  'dead_letters',
  {
    /** `<messageId>@<queue>@<dead-lettered at>`: a redelivered report is the same row; a second dead-lettering is another. */
    key: text('key').primaryKey(),
    messageId: text('message_id').notNull(),
    queue: text('queue').notNull(),
    orderId: text('order_id'),
    type: text('type'),
    reason: text('reason'),
    error: text('error'),
    at: timestamp('at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [index('dead_letters_order_idx').on(t.orderId), index('dead_letters_at_idx').on(t.at)],
);
