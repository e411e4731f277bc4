import { z } from 'zod';
import * as inventory from './contracts/inventory';
import * as order from './contracts/order';
import * as payment from './contracts/payment';
import { routingKeyFor } from './contracts/envelope';

export * from './contracts/envelope';
export * from './contracts/order';
export * from './contracts/inventory';
export * from './contracts/payment';

/**
 * The registry of every event the system publishes: type -> aggregate type -> schema per version.
 * Producers validate before writing the outbox row; consumers validate what they receive.
 * A breaking change adds a version; the old one stays until nobody publishes it.
 */
export const EventCatalog = {
  OrderPlaced: { aggregateType: 'order', versions: { 1: order.OrderPlacedV1 } },
  OrderConfirmed: { aggregateType: 'order', versions: { 1: order.OrderConfirmedV1 } },
  OrderCancelled: { aggregateType: 'order', versions: { 1: order.OrderCancelledV1 } },
  StockReserved: { aggregateType: 'inventory', versions: { 1: inventory.StockReservedV1 } },
  StockRejected: { aggregateType: 'inventory', versions: { 1: inventory.StockRejectedV1 } },
  StockReleased: { aggregateType: 'inventory', versions: { 1: inventory.StockReleasedV1 } },
  StockCommitted: { aggregateType: 'inventory', versions: { 1: inventory.StockCommittedV1 } },
  PaymentAuthorized: { aggregateType: 'payment', versions: { 1: payment.PaymentAuthorizedV1 } },
  PaymentDeclined: { aggregateType: 'payment', versions: { 1: payment.PaymentDeclinedV1 } },
} as const;

type Catalog = typeof EventCatalog;
export type EventType = keyof Catalog;
/** The latest version's data of each event type. */
export type EventData<T extends EventType> = z.infer<Catalog[T]['versions'][1]>;
/** A domain event ready for the outbox: its type and data at the current version. */
export type DomainEvent = { [T in EventType]: { type: T; data: EventData<T> } }[EventType];
export const CURRENT_VERSION = 1 as const;

export class UnknownEventError extends Error {
  constructor(readonly eventType: string, readonly version: number) {
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
