/**
 * The AMQP headers an event travels with: their names, the aggregate headers the relay adds to a row's own, and the
 * checks that a row's headers and short-string properties encode (amqplib's encoder and RabbitMQ accept them).
 */

/** AMQP header names the envelope travels in (besides the properties messageId, type, correlationId). */
export const HEADER = {
  aggregateType: 'x-aggregate-type',
  aggregateId: 'x-aggregate-id',
  /** The relay source (database) the row came from. */
  source: 'x-outbox-source',
  /** Only on messages in the invalid queue: why the row could not be published as an event. */
  invalidReason: 'x-invalid-reason',
  correlationId: 'correlationId',
  causationId: 'causationId',
  traceparent: 'traceparent',
  occurredAt: 'occurredAt',
} as const;

/** Headers a consumer adds when it parks a message in its retry or dead-letter queue. */
export const DEAD_LETTER_HEADER = {
  attempt: 'x-attempt',
  lastError: 'x-last-error',
  reason: 'x-dead-letter-reason',
  error: 'x-dead-letter-error',
  at: 'x-dead-lettered-at',
  by: 'x-dead-lettered-by',
  originalRoutingKey: 'x-original-routing-key',
  originalExchange: 'x-original-exchange',
} as const;

/** AMQP short strings (routing key, messageId, correlationId, type, header names) hold at most 255 bytes. */
export const SHORTSTR = 255;
const INT64_MIN = -(2 ** 63);
const INT64_MAX = 2 ** 63;

/**
 * The row's headers followed by the aggregate headers (which win on a clash), in that order. Copied key by key: V8
 * builds `{ ...headers, [k]: v }` on a slow path that cost microseconds per message, the largest single item of
 * this codec. A `__proto__` key (JSON.parse makes it an own property) would set the copy's prototype if assigned:
 * that rare row takes the spread.
 */
export function withAggregateHeaders(
  headers: Record<string, unknown> | undefined,
  aggregateType: unknown,
  aggregateId: unknown,
  source: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (headers) {
    for (const k in headers) {
      if (k === '__proto__')
        return {
          ...headers,
          [HEADER.aggregateType]: aggregateType,
          [HEADER.aggregateId]: aggregateId,
          [HEADER.source]: source,
        };
      if (Object.hasOwn(headers, k)) out[k] = headers[k];
    }
  }
  out[HEADER.aggregateType] = aggregateType;
  out[HEADER.aggregateId] = aggregateId;
  out[HEADER.source] = source;
  return out;
}

/**
 * Header names RabbitMQ gives routing meaning (sender-selected distribution): an array sends copies to more routing
 * keys, anything else makes the broker close the channel (406), which amqplib's encoder does not foresee.
 */
const ROUTING_HEADERS = ['CC', 'BCC'];
/** Short-string properties: amqplib throws on a non-string or on more than 255 bytes. */
export function propertyProblem(routingKey: string, headers: Record<string, unknown> | undefined): string | undefined {
  if (headers) {
    for (const name of ROUTING_HEADERS)
      if (Object.hasOwn(headers, name))
        return `headers.${name} is not allowed: RabbitMQ routes by it (sender-selected distribution)`;
  }
  const correlationId = headers?.correlationId;
  if (correlationId !== undefined && correlationId !== null) {
    if (typeof correlationId !== 'string') return 'headers.correlationId is not a string';
    if (!fitsShortstr(correlationId)) return 'headers.correlationId is over 255 bytes';
  }
  if (!fitsShortstr(routingKey)) return 'routing key is over 255 bytes';
  return undefined;
}

const fitsShortstr = (s: string) => s.length <= 85 || Buffer.byteLength(s) <= SHORTSTR;

/** Why amqplib's field-table encoder would throw on `headers` (or the table is too large), else undefined. */
export function tableProblem(headers: Record<string, unknown>, maxBytes: number): string | undefined {
  return flatTableFits(headers, maxBytes) ? undefined : tableProblemWalk(headers, maxBytes);
}

/**
 * The common case, cheaply: a flat table of short strings, nulls and booleans, whose size bound (3 bytes per UTF-16
 * unit, the most UTF-8 needs) is within `maxBytes`. Walks keys as amqplib's encoder does (for...in). False says
 * only "not sure": the full walk below decides.
 */
function flatTableFits(headers: Record<string, unknown>, maxBytes: number): boolean {
  let bound = 5;
  for (const k in headers) {
    const v = headers[k];
    // '!' goes to the full walk, which refuses it (amqplib reads an object with that key as a typed value).
    if (k.length > 85 || k === '!') return false;
    bound += 1 + 3 * k.length;
    if (typeof v === 'string') bound += 5 + 3 * v.length;
    else if (v === null || typeof v === 'boolean') bound += 2;
    else if (v !== undefined) return false;
  }
  return bound <= maxBytes;
}

function tableProblemWalk(headers: Record<string, unknown>, maxBytes: number): string | undefined {
  let size = 0;
  const problem = (v: unknown, path: string, depth: number): string | undefined => {
    if (depth > 100) return `${path} is nested too deeply`;
    switch (typeof v) {
      case 'string':
        size += 5 + Buffer.byteLength(v);
        return undefined;
      case 'boolean':
        size += 2;
        return undefined;
      case 'number':
        if (!Number.isFinite(v)) return `${path} is not a finite number`;
        // amqplib sends a number at or above 2^63 as a double, a fraction under 2^50 as a double, anything else as a
        // signed 64-bit integer through BigInt, which throws below -2^63 and on a fraction.
        if (v < INT64_MAX && (Number.isInteger(v) ? v < INT64_MIN : Math.abs(v) >= 2 ** 50))
          return `${path} does not fit an AMQP integer or double`;
        size += 9;
        return undefined;
      case 'undefined':
        return undefined;
      case 'object': {
        if (v === null) {
          size += 1;
          return undefined;
        }
        if (Array.isArray(v)) {
          size += 5;
          for (let i = 0; i < v.length; i++) {
            // amqplib encodes an undefined array element as nothing and then fails; null is fine.
            if (v[i] === undefined) return `${path}[${i}] is undefined`;
            const p = problem(v[i], `${path}[${i}]`, depth + 1);
            if (p) return p;
          }
          return undefined;
        }
        // amqplib reads an object with a '!' key as a typed value ({'!': 'timestamp', value}): never pass one through.
        if (Object.hasOwn(v, '!')) return `${path} has a '!' key (an amqplib typed value)`;
        size += 5;
        for (const [k, x] of Object.entries(v)) {
          if (x === undefined) continue;
          if (Buffer.byteLength(k) > SHORTSTR) return `${path} has a key over 255 bytes`;
          size += 1 + Buffer.byteLength(k);
          const p = problem(x, `${path}.${k}`, depth + 1);
          if (p) return p;
        }
        return undefined;
      }
      default:
        return `${path} is a ${typeof v}`;
    }
  };
  const p = problem(headers, 'headers', 0);
  if (p) return p;
  if (size > maxBytes) return `headers encode to about ${size} bytes, over the limit of ${maxBytes}`;
  return undefined;
}
