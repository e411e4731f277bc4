import { sql } from 'drizzle-orm';
import { bigint, check, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export { inbox } from '@saga/common/db/inbox';
export { outbox } from '@saga/common/db/outbox';

export const products = pgTable(
  'products',
  {
    sku: text('sku').primaryKey(),
    name: text('name').notNull(),
    priceCents: bigint('price_cents', { mode: 'number' }).notNull(),
    /** Quantity that can still be sold: not reserved, not sold. */
    available: integer('available').notNull(),
    /** Quantity held by reservations of orders not yet confirmed or cancelled. */
    reserved: integer('reserved').notNull().default(0),
    updatedAt: timestamp('updated_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [
    check('products_available_nonneg', sql`${t.available} >= 0`),
    check('products_reserved_nonneg', sql`${t.reserved} >= 0`),
    check('products_price_nonneg', sql`${t.priceCents} >= 0`),
  ],
);

export const reservations = pgTable(
  'reservations',
  {
    orderId: uuid('order_id').notNull(),
    sku: text('sku')
      .notNull()
      .references(() => products.sku),
    quantity: integer('quantity').notNull(),
    priceCents: bigint('price_cents', { mode: 'number' }).notNull(),
    status: text('status', { enum: ['RESERVED', 'RELEASED', 'COMMITTED'] }).notNull(),
    createdAt: timestamp('created_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
    updatedAt: timestamp('updated_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.sku] })],
);

/**
 * Orders inventory saw cancelled. A cancel can arrive before the order's reservation (events of one saga travel on
 * different queues); without a record of it, the later reserve would hold stock for an order that is over.
 */
export const cancelledOrders = pgTable('cancelled_orders', {
  orderId: uuid('order_id').primaryKey(),
  cancelledAt: timestamp('cancelled_at', { withTimezone: true })
    .notNull()
    .default(sql`now()`),
});
