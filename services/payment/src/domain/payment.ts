import type { DeclineReason, EventData } from '@saga/common/contracts';

export type Account = { customerId: string; balanceCents: number };
export type AuthorizePayment = { orderId: string; customerId: string; amountCents: number; paymentId: string };

export type PaymentDecision =
  | { type: 'PaymentAuthorized'; data: EventData<'PaymentAuthorized'> }
  | { type: 'PaymentDeclined'; data: EventData<'PaymentDeclined'> };

/**
 * Authorize when the account exists, the amount is within the per-payment limit, and the balance covers it.
 * The checks run in that order, so the reason names the first rule broken.
 */
export function decidePayment(account: Account | undefined, cmd: AuthorizePayment, limitCents: number): PaymentDecision {
  const decline = (reason: DeclineReason): PaymentDecision => ({ type: 'PaymentDeclined', data: { ...cmd, reason } });
  if (!account) return decline('UNKNOWN_CUSTOMER');
  if (cmd.amountCents > limitCents) return decline('LIMIT_EXCEEDED');
  if (account.balanceCents < cmd.amountCents) return decline('INSUFFICIENT_FUNDS');
  return { type: 'PaymentAuthorized', data: cmd };
}

/** The account after a decision: debited by an authorization, untouched by a decline. */
export function applyPayment(account: Account, decision: PaymentDecision): Account {
  return decision.type === 'PaymentAuthorized' ? { ...account, balanceCents: account.balanceCents - decision.data.amountCents } : account;
}
