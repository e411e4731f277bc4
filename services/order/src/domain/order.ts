import type { Decider } from '@saga/common/domain/decider';
import type { CancelReason, DomainEvent, OrderLine } from '@saga/common/contracts/catalog';
import { DomainError } from '@saga/common/domain/domain-error';

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

/** What the other services told the order: recorded in its history, and what moves it on. */
export type OrderFact = Extract<
  DomainEvent,
  { type: 'StockReserved' | 'StockRejected' | 'PaymentAuthorized' | 'PaymentDeclined' }
>;
/** The order's own events (published) and the facts it recorded. */
export type OrderEvent =
  Extract<DomainEvent, { type: 'OrderPlaced' | 'OrderConfirmed' | 'OrderCancelled' }> | OrderFact;
export type PlaceOrder = { orderId: string; customerId: string; items: readonly OrderLine[] };
export type OrderCommand = { type: 'PlaceOrder'; data: PlaceOrder } | { type: 'Record'; fact: OrderFact };

const PUBLISHED = new Set<OrderEvent['type']>(['OrderPlaced', 'OrderConfirmed', 'OrderCancelled']);
/** The events of the order's own that go to the outbox; facts from others are only recorded. */
export const published = (events: readonly OrderEvent[]): DomainEvent[] => events.filter((e) => PUBLISHED.has(e.type));

const isFinal = (o: Order) => o.status !== 'PENDING';

/**
 * Placing announces OrderPlaced. A recorded fact is always kept in the history; while the order is PENDING an
 * authorized payment confirms it and a rejection or decline cancels it (an unknown customer is named as such;
 * insufficient funds and the limit are both PAYMENT_DECLINED). A final order never changes state again.
 */
export function decide(order: Order | undefined, cmd: OrderCommand): OrderEvent[] {
  if (cmd.type === 'PlaceOrder') {
    if (order) throw new DomainError(`order ${cmd.data.orderId} exists`, 409, 'conflict');
    if (cmd.data.items.length === 0) throw new DomainError('an order needs at least one item', 400, 'invalid_request');
    const { orderId, customerId, items } = cmd.data;
    return [{ type: 'OrderPlaced', data: { orderId, customerId, items: items.map((i) => ({ ...i })) } }];
  }
  const { fact } = cmd;
  if (!order) throw new DomainError(`order ${fact.data.orderId} is unknown`, 404, 'not_found');
  if (isFinal(order)) return [fact];
  const cancel = (reason: CancelReason, detail: string | null): OrderEvent[] => [
    fact,
    { type: 'OrderCancelled', data: { orderId: order.id, reason, detail } },
  ];
  switch (fact.type) {
    case 'StockReserved':
      return [fact];
    case 'StockRejected':
      return cancel(fact.data.reason, null);
    case 'PaymentDeclined':
      return cancel(
        fact.data.reason === 'UNKNOWN_CUSTOMER' ? 'UNKNOWN_CUSTOMER' : 'PAYMENT_DECLINED',
        fact.data.reason,
      );
    case 'PaymentAuthorized':
      return [
        fact,
        {
          type: 'OrderConfirmed',
          data: {
            orderId: order.id,
            customerId: order.customerId,
            totalCents: order.totalCents ?? fact.data.amountCents,
          },
        },
      ];
  }
}

/** Placed: a PENDING order. Stock reserved: unit prices and total. Confirmed or cancelled: the final state. */
export function evolve(order: Order | undefined, e: OrderEvent): Order | undefined {
  if (e.type === 'OrderPlaced') {
    const { orderId, customerId, items } = e.data;
    return {
      id: orderId,
      customerId,
      status: 'PENDING',
      reason: null,
      totalCents: null,
      items: items.map((i) => ({ sku: i.sku, quantity: i.quantity, priceCents: null })),
    };
  }
  if (!order) return order;
  switch (e.type) {
    case 'StockReserved': {
      const price = new Map(e.data.lines.map((l) => [l.sku, l.priceCents]));
      return {
        ...order,
        items: order.items.map((i) => ({ ...i, priceCents: price.get(i.sku) ?? i.priceCents })),
        totalCents: e.data.totalCents,
      };
    }
    case 'OrderConfirmed':
      return { ...order, status: 'CONFIRMED', totalCents: e.data.totalCents };
    case 'OrderCancelled':
      return { ...order, status: 'CANCELLED', reason: e.data.reason };
    default:
      return order;
  }
}

export const orderDecider: Decider<Order | undefined, OrderCommand, OrderEvent> = { decide, evolve };

/** The history line an event leaves on its order. */
export function historyEntry(e: OrderEvent): HistoryEntry {
  switch (e.type) {
    case 'StockRejected':
    case 'PaymentDeclined':
    case 'OrderCancelled':
      return { type: e.type, reason: e.data.reason };
    default:
      return { type: e.type };
  }
}
