import { z } from 'zod';
import * as inventory from './inventory';
import * as order from './order';
import * as payment from './payment';
import { routingKeyFor } from './envelope';

export * from './envelope';
export * from './order';
export * from './inventory';
export * from './payment';

/** A service that takes part in the saga (the same names as service-names.ts, which this module does not import). */
type Participant = 'order' | 'inventory' | 'payment';

/**
 * The registry of every event the system publishes: type -> aggregate type (its producer: each service's outbox
 * holds the events of its own aggregate), the services that consume it, what it means, the compensation it
 * triggers, and its schema per version. Producers validate before writing the outbox row; consumers validate what
 * they receive. A breaking change adds a version whose schema transforms to the shape handlers read; the old one
 * stays until nobody publishes it (README, "Schema evolution"). The AsyncAPI document and the README's event
 * catalogue are generated from this (`npm run contracts`).
 */
export const EventCatalog = {
  OrderPlaced: {
    aggregateType: 'order',
    consumers: ['inventory'],
    meaning: 'A customer placed an order (POST /orders); the saga starts.',
    compensation: null,
    versions: { 1: order.OrderPlacedV1, 2: order.OrderPlacedV2 },
  },
  OrderConfirmed: {
    aggregateType: 'order',
    consumers: ['inventory'],
    meaning: 'Payment went through; the order is final (CONFIRMED).',
    compensation: null,
    versions: { 1: order.OrderConfirmedV1 },
  },
  OrderCancelled: {
    aggregateType: 'order',
    consumers: ['inventory'],
    meaning: 'The saga failed (stock or payment); the order is final (CANCELLED) with the reason.',
    compensation: 'inventory releases the reservation, if any (StockReleased)',
    versions: { 1: order.OrderCancelledV1 },
  },
  StockReserved: {
    aggregateType: 'inventory',
    consumers: ['order', 'payment'],
    meaning: 'Every line is reserved at the current unit price; the total is known.',
    compensation: null,
    versions: { 1: inventory.StockReservedV1 },
  },
  StockRejected: {
    aggregateType: 'inventory',
    consumers: ['order'],
    meaning: 'A line is out of stock or unknown; nothing was reserved.',
    compensation: 'order cancels the order (OrderCancelled, same reason); nothing to release',
    versions: { 1: inventory.StockRejectedV1 },
  },
  StockReleased: {
    aggregateType: 'inventory',
    consumers: [],
    meaning: 'A reservation went back to available stock (the compensation of StockReserved).',
    compensation: null,
    versions: { 1: inventory.StockReleasedV1 },
  },
  StockCommitted: {
    aggregateType: 'inventory',
    consumers: [],
    meaning: 'A reservation became a sale.',
    compensation: null,
    versions: { 1: inventory.StockCommittedV1 },
  },
  PaymentAuthorized: {
    aggregateType: 'payment',
    consumers: ['order'],
    meaning: "The customer's account was debited by the order's total.",
    compensation: null,
    versions: { 1: payment.PaymentAuthorizedV1 },
  },
  PaymentDeclined: {
    aggregateType: 'payment',
    consumers: ['order'],
    meaning: 'Nothing was debited: insufficient funds, over the limit, or no account.',
    compensation: 'order cancels the order (OrderCancelled), then inventory releases the stock (StockReleased)',
    versions: { 1: payment.PaymentDeclinedV1 },
  },
} as const satisfies Record<
  string,
  {
    aggregateType: Participant;
    consumers: readonly Participant[];
    meaning: string;
    compensation: string | null;
    versions: { 1: z.ZodType } & Record<number, z.ZodType>;
  }
>;

/** The event types `service` consumes, in catalogue order: its queue's bindings. */
export function consumedBy(service: Participant): EventType[] {
  return (Object.keys(EventCatalog) as EventType[]).filter((t) =>
    (EventCatalog[t].consumers as readonly string[]).includes(service),
  );
}

type Catalog = typeof EventCatalog;
export type EventType = keyof Catalog;
/** The latest version's data of each event type. */
export type EventData<T extends EventType> = z.infer<Catalog[T]['versions'][1]>;
/** A domain event ready for the outbox: its type and data at the current version. */
export type DomainEvent = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];
export const CURRENT_VERSION = 1 as const;

export class UnknownEventError extends Error {
  constructor(
    readonly eventType: string,
    readonly version: number,
  ) {
    super(`unknown event ${eventType} v${version}`);
    this.name = 'UnknownEventError';
  }
}

export function isEventType(type: string): type is EventType {
  return Object.prototype.hasOwnProperty.call(EventCatalog, type);
}

/** The schema of `type` at `version`; throws UnknownEventError when there is none. */
export function schemaFor(type: string, version: number): z.ZodType {
  if (!isEventType(type)) throw new UnknownEventError(type, version);
  const schema = (EventCatalog[type].versions as Record<number, z.ZodType>)[version];
  if (!schema) throw new UnknownEventError(type, version);
  return schema;
}

export function routingKeyOf(type: EventType): string {
  return routingKeyFor(EventCatalog[type].aggregateType, type);
}
