import { desc, eq, sql } from 'drizzle-orm';
import type { Tx } from '@saga/common/outbox';
import type { Account, PaymentDecision } from '../domain/payment';
import { accounts, payments } from './schema';

const accountColumns = { customerId: accounts.customerId, balanceCents: accounts.balanceCents };

export async function lockAccount(tx: Tx, customerId: string): Promise<Account | undefined> {
  const [row] = await tx.select(accountColumns).from(accounts).where(eq(accounts.customerId, customerId)).for('update');
  return row;
}

export async function findAccount(tx: Tx, customerId: string): Promise<Account | undefined> {
  const [row] = await tx.select(accountColumns).from(accounts).where(eq(accounts.customerId, customerId));
  return row;
}

export async function saveBalance(tx: Tx, a: Account): Promise<void> {
  await tx.update(accounts).set({ balanceCents: a.balanceCents, updatedAt: sql`now()` }).where(eq(accounts.customerId, a.customerId));
}

export async function upsertAccount(tx: Tx, a: Account): Promise<Account> {
  const [row] = await tx
    .insert(accounts)
    .values(a)
    .onConflictDoUpdate({ target: accounts.customerId, set: { balanceCents: a.balanceCents, updatedAt: sql`now()` } })
    .returning(accountColumns);
  return row!;
}

export async function hasPayment(tx: Tx, orderId: string): Promise<boolean> {
  const rows = await tx.select({ id: payments.id }).from(payments).where(eq(payments.orderId, orderId));
  return rows.length > 0;
}

export async function recordPayment(tx: Tx, d: PaymentDecision): Promise<void> {
  await tx.insert(payments).values({
    id: d.data.paymentId,
    orderId: d.data.orderId,
    customerId: d.data.customerId,
    amountCents: d.data.amountCents,
    status: d.type === 'PaymentAuthorized' ? 'AUTHORIZED' : 'DECLINED',
    reason: d.type === 'PaymentDeclined' ? d.data.reason : null,
  });
}

export async function listPayments(tx: Tx, filter: { orderId?: string; customerId?: string; limit: number }) {
  const where = filter.orderId ? eq(payments.orderId, filter.orderId) : filter.customerId ? eq(payments.customerId, filter.customerId) : undefined;
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
