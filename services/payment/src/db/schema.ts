import { sql } from 'drizzle-orm';
import { bigint, check, index, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export { inbox } from '@saga/common/db/inbox';
export { outbox } from '@saga/common/db/outbox';

export const accounts = pgTable(
  'accounts',
  {
    customerId: text('customer_id').primaryKey(),
    balanceCents: bigint('balance_cents', { mode: 'number' }).notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [check('accounts_balance_nonneg', sql`${t.balanceCents} >= 0`)],
);

export const payments = pgTable(
  'payments',
  {
    id: uuid('id').primaryKey(),
    orderId: uuid('order_id').notNull().unique(),
    customerId: text('customer_id').notNull(),
    amountCents: bigint('amount_cents', { mode: 'number' }).notNull(),
    status: text('status', { enum: ['AUTHORIZED', 'DECLINED'] }).notNull(),
    reason: text('reason'),
    createdAt: timestamp('created_at', { withTimezone: true })
      .notNull()
      .default(sql`now()`),
  },
  (t) => [index('payments_customer_idx').on(t.customerId)],
);
