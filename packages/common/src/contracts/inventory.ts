import { z } from 'zod';
import { Cents, CustomerId, Sku } from './envelope';

export const ReservedLine = z.object({ sku: Sku, quantity: z.number().int().min(1), priceCents: Cents });
export type ReservedLine = z.infer<typeof ReservedLine>;

export const StockRejectReason = z.enum(['OUT_OF_STOCK', 'UNKNOWN_PRODUCT']);
export type StockRejectReason = z.infer<typeof StockRejectReason>;

/** Every line of the order is reserved at the current unit price; payment reacts by charging the total. */
export const StockReservedV1 = z.object({
  orderId: z.string().uuid(),
  customerId: CustomerId,
  lines: z.array(ReservedLine).min(1),
  totalCents: Cents,
});
/** No line was reserved; `sku` is the first line that could not be. */
export const StockRejectedV1 = z.object({ orderId: z.string().uuid(), reason: StockRejectReason, sku: Sku });
/** A reservation went back to available stock (compensation). */
export const StockReleasedV1 = z.object({ orderId: z.string().uuid(), lines: z.array(ReservedLine) });
/** A reservation became a sale. */
export const StockCommittedV1 = z.object({ orderId: z.string().uuid(), lines: z.array(ReservedLine) });
