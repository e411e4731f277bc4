import type { CancelReason, DomainEvent, EventData, OrderLine } from '@saga/common/contracts';
import { DomainError } from '@saga/common/errors';

export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';
export type OrderItem = { sku: string; quantity: number; priceCents: number | null };
export type HistoryEntry = { type: string; reason?: string };

export type Order = {
  id: string;
  customerId: string;
  status: OrderStatus;
  reason: CancelReason | null;
  totalCents: number | null;
  items: OrderItem[];
};

/** What applying an incoming event did: the order after it, what to add to its history, events to publish. */
export type Transition = { order: Order; history: HistoryEntry[]; events: DomainEvent[] };

export type PlaceOrder = { orderId: string; customerId: string; items: readonly OrderLine[] };

export function placeOrder(cmd: PlaceOrder): Transition {
  if (cmd.items.length === 0) throw new DomainError('an order needs at least one item', 400, 'invalid_request');
  const order: Order = {
    id: cmd.orderId,
    customerId: cmd.customerId,
    status: 'PENDING',
    reason: null,
    totalCents: null,
    items: cmd.items.map((i) => ({ sku: i.sku, quantity: i.quantity, priceCents: null })),
  };
  return {
    order,
    history: [{ type: 'OrderPlaced' }],
    events: [{ type: 'OrderPlaced', data: { orderId: cmd.orderId, customerId: cmd.customerId, items: cmd.items.map((i) => ({ ...i })) } }],
  };
}

const isFinal = (o: Order) => o.status !== 'PENDING';

/** Stock was reserved: record unit prices and the total. Payment decides next; nothing to publish here. */
export function onStockReserved(order: Order, e: EventData<'StockReserved'>): Transition {
  const price = new Map(e.lines.map((l) => [l.sku, l.priceCents]));
  const items = order.items.map((i) => ({ ...i, priceCents: price.get(i.sku) ?? i.priceCents }));
  return { order: { ...order, items, totalCents: e.totalCents }, history: [{ type: 'StockReserved' }], events: [] };
}

export function onStockRejected(order: Order, e: EventData<'StockRejected'>): Transition {
  return cancel(order, e.reason, null, { type: 'StockRejected', reason: e.reason });
}

export function onPaymentAuthorized(order: Order, e: EventData<'PaymentAuthorized'>): Transition {
  const seen: HistoryEntry = { type: 'PaymentAuthorized' };
  if (isFinal(order)) return { order, history: [seen], events: [] };
  const totalCents = order.totalCents ?? e.amountCents;
  return {
    order: { ...order, status: 'CONFIRMED', totalCents },
    history: [seen, { type: 'OrderConfirmed' }],
    events: [{ type: 'OrderConfirmed', data: { orderId: order.id, customerId: order.customerId, totalCents } }],
  };
}

/** An unknown customer is named as such; insufficient funds and the limit are both PAYMENT_DECLINED. */
export function onPaymentDeclined(order: Order, e: EventData<'PaymentDeclined'>): Transition {
  const reason: CancelReason = e.reason === 'UNKNOWN_CUSTOMER' ? 'UNKNOWN_CUSTOMER' : 'PAYMENT_DECLINED';
  return cancel(order, reason, e.reason, { type: 'PaymentDeclined', reason: e.reason });
}

function cancel(order: Order, reason: CancelReason, detail: string | null, seen: HistoryEntry): Transition {
  if (isFinal(order)) return { order, history: [seen], events: [] };
  return {
    order: { ...order, status: 'CANCELLED', reason },
    history: [seen, { type: 'OrderCancelled', reason }],
    events: [{ type: 'OrderCancelled', data: { orderId: order.id, reason, detail } }],
  };
}
