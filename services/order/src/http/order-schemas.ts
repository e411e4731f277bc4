/**
 * The order service's request and response schemas: what the routes validate, and what its OpenAPI document
 * (order-api.ts) is generated from.
 */
import { z } from 'zod';
import { CancelReason, Cents, CustomerId, OrderLine, Sku } from '@saga/common/contracts/catalog';

export const PlaceOrderBody = z.strictObject({
  customerId: CustomerId.optional().meta({
    description: "The bearer token's customer (its subject); another customer's id is refused with 403",
  }),
  items: z.array(OrderLine.strict()).min(1).max(50),
});
/** Order ids in any case name one order; the database, and the notifications it sends, spell them in lower case. */
const OrderId = z
  .string()
  .uuid()
  .transform((id) => id.toLowerCase());
export const IdParams = z.object({ orderId: OrderId });
export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(200)
    .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
    .optional()
    .meta({
      description:
        'Retries with the same key and body answer the same order; the same key with another body answers 409',
    }),
});
export const OrderStatus = z.enum(['PENDING', 'CONFIRMED', 'CANCELLED']);
export const ListQuery = z.strictObject({
  status: OrderStatus.optional().meta({ description: 'Only orders in this status' }),
  limit: z.coerce.number().int().min(1).max(100).default(20).meta({ description: 'Page size' }),
  after: OrderId.optional().meta({ description: 'The `next` of the previous page: the page starts after this order' }),
});

export const OrderAccepted = z.object({ orderId: z.string().uuid(), status: OrderStatus }).meta({
  id: 'OrderAccepted',
  description: 'The order is placed (PENDING); a replay with the same Idempotency-Key answers its current status',
});
export const HistoryEntry = z
  .object({
    type: z.string().meta({
      description:
        'The event: OrderPlaced, StockReserved, StockRejected, PaymentAuthorized, PaymentDeclined, OrderConfirmed, OrderCancelled',
    }),
    at: z.iso.datetime({ offset: true }),
    reason: z.string().optional(),
  })
  .meta({ id: 'HistoryEntry', description: "One step of the order's saga" });
export const OrderViewSchema = z
  .object({
    orderId: z.string().uuid(),
    customerId: CustomerId,
    status: OrderStatus,
    reason: CancelReason.nullable().meta({ description: 'Why it was cancelled; null otherwise' }),
    totalCents: Cents.nullable().meta({ description: 'Known once stock is reserved' }),
    items: z.array(z.object({ sku: Sku, quantity: z.number().int().min(1), priceCents: Cents.nullable() })),
    history: z.array(HistoryEntry),
    createdAt: z.iso.datetime({ offset: true }),
    updatedAt: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'Order', description: 'An order, its lines (with the unit price once reserved) and its history' });
export const OrderPage = z
  .object({
    orders: z.array(
      OrderViewSchema.pick({
        orderId: true,
        customerId: true,
        status: true,
        reason: true,
        totalCents: true,
        createdAt: true,
        updatedAt: true,
      }),
    ),
    next: z
      .string()
      .uuid()
      .nullable()
      .meta({ description: 'Cursor of the next page (its `after`), null on the last page' }),
  })
  .meta({ id: 'OrderPage', description: 'Orders, newest first' });
