import { z } from 'zod';
import { Cents, CustomerId } from './envelope';

export const DeclineReason = z.enum(['INSUFFICIENT_FUNDS', 'LIMIT_EXCEEDED', 'UNKNOWN_CUSTOMER']);
export type DeclineReason = z.infer<typeof DeclineReason>;

/** The account was debited by the order's total. */
export const PaymentAuthorizedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  paymentId: z.string().uuid(),
  amountCents: Cents,
});
/** Nothing was debited. */
export const PaymentDeclinedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  paymentId: z.string().uuid(),
  amountCents: Cents,
  reason: DeclineReason,
});
