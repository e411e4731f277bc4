import { z } from 'zod';
import { Identifier } from './text';

/** Metadata every event carries across services: the order id as correlation id, the causing message's id. */
export const EventHeaders = z.object({
  correlationId: z.string().min(1),
  causationId: z.string().min(1).nullable(),
  traceparent: z.string().optional(),
  /** When the producer decided the event (ISO 8601, milliseconds); absent from producers that do not say. */
  occurredAt: z.string().optional(),
});
export type EventHeaders = z.infer<typeof EventHeaders>;

/**
 * An event as it travels: the outbox row (Debezium outbox column names) on the producing side, an AMQP message
 * (messageId, type, headers, JSON body = payload) on the consuming side.
 */
export const Envelope = z.object({
  id: z.string().uuid(),
  aggregateType: z.string().min(1),
  aggregateId: z.string().min(1),
  type: z.string().min(1),
  payload: z.object({ version: z.number().int().positive(), data: z.unknown() }),
  headers: EventHeaders,
});
export type Envelope = z.infer<typeof Envelope>;

/** The routing key of an event on the topic exchange: `<aggregateType>.<type>`. */
export const routingKeyFor = (aggregateType: string, type: string) => `${aggregateType}.${type}`;

export const Sku = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash or underscore');
export const CustomerId = Identifier(64);
export const Cents = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
