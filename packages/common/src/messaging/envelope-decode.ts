/**
 * Decoding: an AMQP message -> the event envelope, whichever publisher sent it (our relay, or Debezium Server).
 */
import type { ConsumeMessage } from 'amqplib';
import { Envelope } from '../contracts/catalog';
import { fromDebezium, isDebeziumShaped } from './debezium';
import { HEADER } from './envelope-headers';
import { InvalidMessageError } from './errors';

/**
 * Rebuild the envelope from an AMQP message our relay published, or Debezium Server with the Outbox Event Router
 * (see debezium.ts). Throws InvalidMessageError when it cannot be one.
 */
export function decodeMessage(received: Pick<ConsumeMessage, 'content' | 'properties'>): Envelope {
  const msg = isDebeziumShaped(received.properties) ? fromDebezium(received) : received;
  const p = msg.properties;
  const h = (p.headers ?? {}) as Record<string, unknown>;
  let payload: unknown;
  try {
    payload = JSON.parse(msg.content.toString('utf8'));
  } catch {
    throw new InvalidMessageError('body is not valid JSON');
  }
  const parsed = Envelope.safeParse({
    id: p.messageId,
    type: p.type,
    aggregateType: h[HEADER.aggregateType],
    aggregateId: h[HEADER.aggregateId],
    payload,
    headers: {
      correlationId: p.correlationId ?? h[HEADER.correlationId],
      causationId: h[HEADER.causationId] ?? null,
      ...(typeof h[HEADER.traceparent] === 'string' ? { traceparent: h[HEADER.traceparent] as string } : {}),
      ...(typeof h[HEADER.occurredAt] === 'string' ? { occurredAt: h[HEADER.occurredAt] as string } : {}),
    },
  });
  if (!parsed.success) {
    throw new InvalidMessageError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  }
  return parsed.data;
}
