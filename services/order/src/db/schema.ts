import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

export { inbox } from '@saga/common/db/inbox';
export { outbox } from '@saga/common/db/outbox';

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey(),
    customerId: text('customer_id').notNull(),
    status: text('status', { enum: ['PENDING', 'CONFIRMED', 'CANCELLED'] }).notNull(),
    reason: text('reason'),
    totalCents: bigint('total_cents', { mode: 'number' }),
    idempotencyKey: text('idempotency_key'),
    requestHash: text('request_hash'),
    createdAt: timestamp('created_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
    updatedAt: timestamp('updated_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [
    index('orders_created_idx').on(t.createdAt.desc(), t.id.desc()),
    index('orders_status_created_idx').on(t.status, t.createdAt.desc(), t.id.desc()),
    // A key is the customer's own: two customers who both count their requests from 1 must not meet.
    // Partial: most orders come without a key, and a full index took an entry for each of them and again for every
    // status change (an update that changes an indexed column writes to every index).
    uniqueIndex('orders_customer_idempotency_key_unique')
      .on(t.customerId, t.idempotencyKey)
      .where(sql`idempotency_key IS NOT NULL`),
  ],
);

export const orderItems = pgTable(
  'order_items',
  {
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id),
    lineNo: integer('line_no').notNull(),
    sku: text('sku').notNull(),
    quantity: integer('quantity').notNull(),
    priceCents: bigint('price_cents', { mode: 'number' }),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.lineNo] })],
);

export const orderHistory = pgTable(
  'order_history',
  {
    id: bigserial('id', { mode: 'number' }).notNull(),
    orderId: uuid('order_id')
      .notNull()
      .references(() => orders.id),
    type: text('type').notNull(),
    detail: jsonb('detail'),
    at: timestamp('at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  // History is read per order in the order it happened: one index serves that and identifies a line, where a key
  // on id alone plus an (order_id, id) index cost two index entries per line (four lines per order).
  (t) => [primaryKey({ columns: [t.orderId, t.id] })],
);

/**
 * Orders someone follows over server-sent events (any replica). A writer announces a change with NOTIFY only for
 * a watched order, so the database-wide lock NOTIFY takes until commit is paid only when someone listens.
 */
export const orderWatch = pgTable(
  'order_watch',
  {
    orderId: uuid('order_id').notNull(),
    watcher: uuid('watcher').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.watcher] })],
);
