import { z } from 'zod';
import { Cents, CustomerId } from './envelope';
import { ReservedLine } from './inventory';

export const DeclineReason = z.enum(['INSUFFICIENT_FUNDS', 'LIMIT_EXCEEDED', 'UNKNOWN_CUSTOMER']);
export type DeclineReason = z.infer<typeof DeclineReason>;

/**
 * The reserved lines with their unit prices, as StockReserved told payment: the order learns its prices from the
 * payment's outcome and needs no StockReserved of its own. Optional: a payment service older than this field omits it.
 */
const lines = z.array(ReservedLine).min(1).optional();

/** The account was debited by the order's total. */
export const PaymentAuthorizedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  paymentId: z.string().uuid(),
  amountCents: Cents,
  lines,
});
/** Nothing was debited. */
export const PaymentDeclinedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  paymentId: z.string().uuid(),
  amountCents: Cents,
  reason: DeclineReason,
  lines,
});
