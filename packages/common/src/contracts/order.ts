import { z } from 'zod';
import { Cents, CustomerId, Sku } from './envelope';

export const OrderLine = z.object({ sku: Sku, quantity: z.number().int().min(1).max(1_000_000) });
export type OrderLine = z.infer<typeof OrderLine>;

export const CancelReason = z.enum(['OUT_OF_STOCK', 'UNKNOWN_PRODUCT', 'PAYMENT_DECLINED', 'UNKNOWN_CUSTOMER']);
export type CancelReason = z.infer<typeof CancelReason>;

/** A customer placed an order; inventory reacts by reserving stock. */
export const OrderPlacedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  items: z.array(OrderLine).min(1).max(50),
});
/**
 * Version 2 of OrderPlaced (an example of a breaking change: `items` renamed `lines`). No service writes it yet;
 * consumers accept it beside v1 and read it as v1 (the transform), so producers can switch once every consumer has
 * deployed. See the README, "Schema evolution".
 */
export const OrderPlacedV2 = z
  .object({
    orderId: z.string().uuid(),
    customerId: CustomerId,
    lines: z.array(OrderLine).min(1).max(50),
  })
  .transform(({ lines, ...rest }): z.infer<typeof OrderPlacedV1> => ({ ...rest, items: lines }));
/** Payment went through; inventory turns the reservation into a sale. */
export const OrderConfirmedV1 = z.object({ orderId: z.string().uuid(), customerId: CustomerId, totalCents: Cents });
/** The saga failed; inventory releases any reservation. `detail` keeps the cause's own reason. */
export const OrderCancelledV1 = z.object({
  orderId: z.string().uuid(),
  reason: CancelReason,
  detail: z.string().nullable(),
});
