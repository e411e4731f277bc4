/**
 * The copies a consumer parks in its retry and dead-letter queues. A copy carries an allowlist of the message's
 * properties and headers, never the incoming ones as they are: any sender can set headers, and some have meaning to
 * the broker (`CC` and `BCC` route copies elsewhere, and a `CC` that is not an array closes the channel) or cannot be
 * encoded again (amqplib throws on a NaN double), which would return the message to the queue for ever.
 */
import type { ConsumeMessage, MessageProperties, Options } from 'amqplib';
import { DEBEZIUM_HEADER } from './debezium';
import { DEAD_LETTER_HEADER as DLH, HEADER } from './envelope-codec';

/** Headers a parked copy keeps: what the envelope travels in (our relay's and Debezium's), nothing else. */
export const CARRIED_HEADERS: ReadonlySet<string> = new Set([
  HEADER.aggregateType,
  HEADER.aggregateId,
  HEADER.source,
  HEADER.correlationId,
  HEADER.causationId,
  HEADER.traceparent,
  HEADER.occurredAt,
  DEBEZIUM_HEADER.id,
  DEBEZIUM_HEADER.type,
  DEBEZIUM_HEADER.outboxHeaders,
]);

/** AMQP short strings (message id, type, correlation id) hold at most 255 bytes. */
const SHORTSTR = 255;
/** Long enough for any envelope header (a Debezium `x-outbox-headers` JSON text); a copy's table stays small. */
const MAX_HEADER_BYTES = 8 * 1024;
/** Far above any attempt count a consumer reaches (CONSUMER_MAX_ATTEMPTS is at most 100). */
const MAX_ATTEMPT = 1_000_000;

const encodable = (v: unknown): boolean =>
  (typeof v === 'string' && Buffer.byteLength(v) <= MAX_HEADER_BYTES) ||
  (Buffer.isBuffer(v) && v.length <= MAX_HEADER_BYTES) ||
  (typeof v === 'number' && Number.isSafeInteger(v)) ||
  typeof v === 'boolean';

const shortString = (v: unknown): string | undefined =>
  typeof v === 'string' && Buffer.byteLength(v) <= SHORTSTR ? v : undefined;

/**
 * The attempts a message has already spent, from its `x-attempt` header: a non-negative integer. Anything else (a
 * string, a negative or fractional number, NaN, a value set by a sender) counts as 0, so the count a consumer writes
 * next is always its own and grows by one per try: never a retry for ever.
 */
export function attemptsSpent(headers: Record<string, unknown> | undefined): number {
  const v = (headers ?? {})[DLH.attempt];
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? Math.min(v, MAX_ATTEMPT) : 0;
}

/** The message's allowlisted headers whose values can be encoded again. */
export function carriedHeaders(headers: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers ?? {})) if (CARRIED_HEADERS.has(k) && encodable(v)) out[k] = v;
  return out;
}

/** The message's own properties a copy keeps (identity and content description), each checked. */
export function carriedProperties(p: MessageProperties): Options.Publish {
  const out: Options.Publish = { persistent: true };
  const strings = ['messageId', 'correlationId', 'type', 'appId', 'contentType', 'contentEncoding'] as const;
  for (const k of strings) {
    const v = shortString(p[k]);
    if (v !== undefined) out[k] = v;
  }
  if (typeof p.timestamp === 'number' && Number.isSafeInteger(p.timestamp) && p.timestamp >= 0)
    out.timestamp = p.timestamp;
  return out;
}

/** The copy for the retry queue: it expires back into the work queue after `delayMs`. */
export function retryCopy(msg: ConsumeMessage, attempt: number, delayMs: number, error: string): Options.Publish {
  return {
    ...carriedProperties(msg.properties),
    expiration: String(delayMs),
    headers: {
      ...carriedHeaders(msg.properties.headers),
      [DLH.attempt]: attempt,
      [DLH.lastError]: error.slice(0, 500),
    },
  };
}

/**
 * The copy for the dead-letter queue, with the reason. `bare` leaves out everything the message brought (for a
 * message whose full copy could not be encoded): only the consumer's own headers and the message id, when it is one.
 */
export function deadLetterCopy(
  msg: ConsumeMessage,
  d: { reason: string; error: string; by: string; at: Date; attempt: number },
  bare = false,
): Options.Publish {
  const messageId = shortString(msg.properties.messageId);
  return {
    ...(bare ? { persistent: true, ...(messageId ? { messageId } : {}) } : carriedProperties(msg.properties)),
    headers: {
      ...(bare ? {} : carriedHeaders(msg.properties.headers)),
      [DLH.attempt]: d.attempt,
      [DLH.reason]: d.reason,
      [DLH.error]: d.error.slice(0, 1000),
      [DLH.at]: d.at.toISOString(),
      [DLH.originalRoutingKey]: msg.fields.routingKey.slice(0, SHORTSTR),
      [DLH.originalExchange]: msg.fields.exchange.slice(0, SHORTSTR),
      [DLH.by]: d.by,
    },
  };
}
