import { sql } from 'drizzle-orm';
import { bigint, bigserial, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export { inbox, outbox } from '@saga/common/outbox';

export const orders = pgTable(
  'orders',
  {
    id: uuid('id').primaryKey(),
    customerId: text('customer_id').notNull(),
    status: text('status', { enum: ['PENDING', 'CONFIRMED', 'CANCELLED'] }).notNull(),
    reason: text('reason'),
    totalCents: bigint('total_cents', { mode: 'number' }),
    idempotencyKey: text('idempotency_key').unique(),
    requestHash: text('request_hash'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().default(sql`now()`),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [index('orders_created_idx').on(t.createdAt.desc(), t.id.desc()), index('orders_status_created_idx').on(t.status, t.createdAt.desc(), t.id.desc())],
);

export const orderItems = pgTable(
  'order_items',
  {
    orderId: uuid('order_id').notNull().references(() => orders.id),
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
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    orderId: uuid('order_id').notNull().references(() => orders.id),
    type: text('type').notNull(),
    detail: jsonb('detail'),
    at: timestamp('at', { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [index('order_history_order_idx').on(t.orderId, t.id)],
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
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.watcher] })],
);
