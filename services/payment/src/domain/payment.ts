import type { Decider } from '@saga/common/domain/decider';
import type { DeclineReason, DomainEvent } from '@saga/common/contracts/catalog';

export type Account = { customerId: string; balanceCents: number };
export type PaymentStatus = 'AUTHORIZED' | 'DECLINED';
export type PaymentRecord = {
  paymentId: string;
  orderId: string;
  customerId: string;
  amountCents: number;
  status: PaymentStatus;
  reason: DeclineReason | null;
};

/** The accounts involved and the payment already made for each order (one attempt per order). */
export type Payments = {
  accounts: ReadonlyMap<string, Account>;
  payments: ReadonlyMap<string, PaymentRecord>;
};

/** `limitCents` is the per-payment limit in force; `paymentId` the id the new payment gets. */
export type AuthorizePayment = {
  type: 'AuthorizePayment';
  orderId: string;
  customerId: string;
  amountCents: number;
  paymentId: string;
  limitCents: number;
};

export type PaymentEvent = Extract<DomainEvent, { type: 'PaymentAuthorized' | 'PaymentDeclined' }>;

/**
 * Authorize when the account exists, the amount is within the per-payment limit, and the balance covers it.
 * The checks run in that order, so the reason names the first rule broken. An order is paid at most once.
 */
export function decide(state: Payments, cmd: AuthorizePayment): PaymentEvent[] {
  if (state.payments.has(cmd.orderId)) return [];
  const { orderId, customerId, amountCents, paymentId } = cmd;
  const data = { orderId, customerId, amountCents, paymentId };
  const decline = (reason: DeclineReason): PaymentEvent[] => [{ type: 'PaymentDeclined', data: { ...data, reason } }];
  const account = state.accounts.get(customerId);
  if (!account) return decline('UNKNOWN_CUSTOMER');
  if (amountCents > cmd.limitCents) return decline('LIMIT_EXCEEDED');
  if (account.balanceCents < amountCents) return decline('INSUFFICIENT_FUNDS');
  return [{ type: 'PaymentAuthorized', data }];
}

/** An authorization debits the account; either outcome records the order's payment. */
export function evolve(state: Payments, e: PaymentEvent): Payments {
  const record: PaymentRecord = {
    ...e.data,
    status: e.type === 'PaymentAuthorized' ? 'AUTHORIZED' : 'DECLINED',
    reason: e.type === 'PaymentDeclined' ? e.data.reason : null,
  };
  const payments = new Map(state.payments).set(e.data.orderId, record);
  if (e.type === 'PaymentDeclined') return { ...state, payments };
  const account = state.accounts.get(e.data.customerId);
  if (!account) throw new Error(`account ${e.data.customerId} is not loaded`);
  const accounts = new Map(state.accounts).set(account.customerId, {
    ...account,
    balanceCents: account.balanceCents - e.data.amountCents,
  });
  return { accounts, payments };
}

export const paymentDecider: Decider<Payments, AuthorizePayment, PaymentEvent> = { decide, evolve };
