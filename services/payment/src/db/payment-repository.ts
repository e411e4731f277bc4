import { desc, eq, sql } from 'drizzle-orm';
import type { SqlClient, SqlPart, StatementSink, Db } from '@saga/common/db/sql';
import type { Account, PaymentRecord, Payments } from '../domain/payment';
import { accounts, payments } from './schema';

const accountColumns = { customerId: accounts.customerId, balanceCents: accounts.balanceCents };

/**
 * One statement: claim the messages in the inbox, lock the accounts of `customerIds` (key order, so concurrent
 * batches never deadlock) and read which of `orderIds` already have a payment.
 */
export async function loadPayments(
  c: SqlClient,
  inbox: SqlPart,
  customerIds: readonly string[],
  orderIds: readonly string[],
): Promise<{ claimed: string[]; state: Payments }> {
  const n = inbox.values.length;
  const { rows } = await c.query<{
    claimed: string[] | null;
    accounts: { customer_id: string; balance_cents: number }[];
    payments: (Omit<PaymentRecord, 'amountCents'> & { amountCents: number | string })[];
  }>({
    name: 'payment.load',
    text: `WITH claimed AS (${inbox.text(1)}),
      a AS (SELECT customer_id, balance_cents FROM accounts WHERE customer_id = ANY($${n + 1}::text[]) ORDER BY customer_id FOR UPDATE)
      SELECT (SELECT array_agg(message_id) FROM claimed) AS claimed,
             (SELECT coalesce(json_agg(a), '[]') FROM a) AS accounts,
             (SELECT coalesce(json_agg(json_build_object('paymentId', id, 'orderId', order_id, 'customerId', customer_id,
                'amountCents', amount_cents, 'status', status, 'reason', reason)), '[]') FROM payments WHERE order_id = ANY($${n + 2}::uuid[])) AS payments`,
    values: [...inbox.values, customerIds, orderIds],
  });
  const row = rows[0]!;
  return {
    claimed: row.claimed ?? [],
    state: {
      accounts: new Map(
        row.accounts.map((a) => [a.customer_id, { customerId: a.customer_id, balanceCents: Number(a.balance_cents) }]),
      ),
      payments: new Map(row.payments.map((p) => [p.orderId, { ...p, amountCents: Number(p.amountCents) }])),
    },
  };
}

/**
 * One statement: the balances that differ between `before` and `after`, the payments the batch added, and the
 * outbox rows.
 */
export async function savePayments(
  c: StatementSink,
  before: Payments,
  after: Payments,
  outbox: SqlPart,
): Promise<void> {
  const a: [string[], number[]] = [[], []];
  for (const [id, account] of after.accounts) {
    if (before.accounts.get(id) === account) continue;
    a[0].push(id);
    a[1].push(account.balanceCents);
  }
  const added = [...after.payments.values()].filter((p) => !before.payments.has(p.orderId));
  const p = {
    id: added.map((r) => r.paymentId),
    orderId: added.map((r) => r.orderId),
    customerId: added.map((r) => r.customerId),
    amount: added.map((r) => r.amountCents),
    status: added.map((r) => r.status),
    reason: added.map((r) => r.reason),
  };
  await c.query({
    name: 'payment.save',
    text: `WITH a AS (UPDATE accounts a SET balance_cents = v.balance, updated_at = now()
             FROM unnest($1::text[], $2::bigint[]) AS v(id, balance) WHERE a.customer_id = v.id),
           p AS (INSERT INTO payments (id, order_id, customer_id, amount_cents, status, reason)
             SELECT * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::bigint[], $7::text[], $8::text[])),
           o AS (${outbox.text(9)})
         SELECT 1`,
    values: [...a, p.id, p.orderId, p.customerId, p.amount, p.status, p.reason, ...outbox.values],
  });
}

export async function findAccount(tx: Db, customerId: string): Promise<Account | undefined> {
  const [row] = await tx.select(accountColumns).from(accounts).where(eq(accounts.customerId, customerId));
  return row;
}

export async function upsertAccount(tx: Db, a: Account): Promise<Account> {
  const [row] = await tx
    .insert(accounts)
    .values(a)
    .onConflictDoUpdate({ target: accounts.customerId, set: { balanceCents: a.balanceCents, updatedAt: sql`now()` } })
    .returning(accountColumns);
  return row!;
}

export async function listPayments(tx: Db, filter: { orderId?: string; customerId?: string; limit: number }) {
  const where = filter.orderId
    ? eq(payments.orderId, filter.orderId)
    : filter.customerId
      ? eq(payments.customerId, filter.customerId)
      : undefined;
  return tx
    .select({
      paymentId: payments.id,
      orderId: payments.orderId,
      customerId: payments.customerId,
      amountCents: payments.amountCents,
      status: payments.status,
      reason: payments.reason,
      createdAt: payments.createdAt,
    })
    .from(payments)
    .where(where)
    .orderBy(desc(payments.createdAt))
    .limit(filter.limit);
}
