/**
 * The one envelope codec: an outbox row (Debezium outbox columns) <-> an AMQP message (routing key, properties,
 * headers, body). The relay encodes with it, consumers decode with it, tests read the header names from it.
 */
import { randomUUID } from 'node:crypto';
import type { ConsumeMessage, Options } from 'amqplib';
import { Envelope, EventCatalog, isEventType, routingKeyFor } from '../contracts/catalog';
import { fromDebezium, isDebeziumShaped } from './debezium';
import { InvalidMessageError } from './errors';

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

export const APP_ID = 'cdc-relay';
export { routingKeyFor } from '../contracts/catalog';

export type EncodeLimits = {
  /** RabbitMQ's `max_message_size` (default 128 MiB): a larger body is refused and closes the channel. */
  maxBodyBytes: number;
  /**
   * Encoded header table bound: amqplib encodes headers into a 64 KiB scratch buffer (throws beyond it), and the
   * content header frame must fit in the negotiated `frame_max`.
   */
  maxHeaderBytes: number;
};
export const DEFAULT_LIMITS: EncodeLimits = { maxBodyBytes: 128 * 1024 * 1024, maxHeaderBytes: 60 * 1024 };

export type EncodedMessage =
  | { ok: true; routingKey: string; content: Buffer; options: Options.Publish }
  | { ok: false; reason: string; content: Buffer; options: Options.Publish };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WORD = /^[A-Za-z0-9_.-]{1,200}$/;
/** AMQP short strings (routing key, messageId, correlationId, type, header names) hold at most 255 bytes. */
const SHORTSTR = 255;
const INT64_MIN = -(2 ** 63);
const INT64_MAX = 2 ** 63;

/**
 * An outbox row as pgoutput decoded it -> the AMQP message: routing key `<aggregatetype>.<type>`, messageId = outbox
 * id, correlationId from the row's headers, the row's headers plus the aggregate headers, body = payload.
 *
 * Every property and header is checked against what amqplib's encoder and RabbitMQ accept (short strings, int64
 * numbers, amqplib's typed-value objects, table size, body size, timestamp); a row that fails comes back `ok: false`
 * with the reason and a message for the invalid queue that always encodes. Hot path: `payload` may arrive as the
 * JSON text PostgreSQL sent, as a string or as its bytes (the relay's stream), and is then the body as is, never
 * parsed and serialized again; `headers` likewise, parsed once.
 */
export function encodeOutboxRow(
  row: Record<string, unknown>,
  source: string,
  table: string,
  limits: EncodeLimits = DEFAULT_LIMITS,
): EncodedMessage {
  const headers = parseObject(row.headers);
  const id = typeof row.id === 'string' ? row.id : undefined;
  let reason = invalidReason(row, id, headers) ?? provenanceProblem(row, source);
  let timestamp = 0;
  let amqpHeaders: Record<string, unknown> | undefined;
  let content: Buffer | undefined;
  let routingKey = '';
  if (!reason) {
    const created = row.created_at;
    const ms =
      created instanceof Date
        ? created.getTime()
        : created === undefined || created === null
          ? Date.now()
          : Date.parse(String(created));
    timestamp = Math.floor(ms / 1000);
    if (!(timestamp >= 0 && timestamp < 2 ** 53))
      reason = 'created_at is before 1970 or not a time (AMQP timestamps are unsigned)';
  }
  if (!reason) {
    amqpHeaders = withAggregateHeaders(headers, row.aggregatetype, row.aggregateid, source);
    routingKey = routingKeyFor(row.aggregatetype as string, row.type as string);
    reason = propertyProblem(routingKey, headers) ?? tableProblem(amqpHeaders, limits.maxHeaderBytes);
  }
  if (!reason) {
    content = payloadBytes(row.payload);
    if (content.length > limits.maxBodyBytes)
      reason = `payload is ${content.length} bytes, over the broker's limit of ${limits.maxBodyBytes}`;
  }
  if (reason) return encodeInvalid(row, source, table, reason, limits);
  return {
    ok: true,
    routingKey,
    content: content!,
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      timestamp,
      messageId: id,
      correlationId: headers?.correlationId as string | undefined,
      type: row.type as string,
      appId: APP_ID,
      headers: amqpHeaders,
    },
  };
}

/**
 * The invalid queue's copy of a row that cannot be an event: the row as JSON in the body (what fits), only
 * properties and headers known to encode, the reason in `x-invalid-reason`. Mandatory: it must be stored.
 */
export function encodeInvalid(
  row: Record<string, unknown>,
  source: string,
  table: string,
  reason: string,
  limits: EncodeLimits = DEFAULT_LIMITS,
): EncodedMessage & { ok: false } {
  const id = typeof row.id === 'string' && UUID.test(row.id) ? row.id : randomUUID();
  const shortOr = (v: unknown) => (typeof v === 'string' && Buffer.byteLength(v) <= SHORTSTR ? v : undefined);
  const created =
    row.created_at instanceof Date && !Number.isNaN(row.created_at.getTime())
      ? row.created_at.toISOString()
      : row.created_at;
  const content = invalidBody(row, created, source, table, reason, limits.maxBodyBytes);
  return {
    ok: false,
    reason,
    content,
    options: {
      persistent: true,
      mandatory: true,
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      messageId: id,
      appId: APP_ID,
      headers: {
        [HEADER.invalidReason]: reason.slice(0, 1000),
        [HEADER.source]: source,
        [HEADER.aggregateType]: shortOr(row.aggregatetype),
        [HEADER.aggregateId]: shortOr(row.aggregateid),
      },
    },
  };
}

/** What a column costs in the invalid copy's JSON, about, without serializing it: bytes, or string length × 3. */
function roughSize(v: unknown): number {
  if (Buffer.isBuffer(v)) return v.length;
  if (typeof v === 'string') return v.length * 3;
  if (v instanceof Date) return 32;
  if (v === null || v === undefined || typeof v !== 'object') return 32;
  return Infinity; // a parsed object: its size is unknown until serialized, so it goes the cut way
}

/**
 * The invalid copy's body: the row as JSON, or, when that could be over `maxBytes`, every column cut to 1 KiB with
 * its full size. A large column is cut before it is turned into text (a Buffer is sliced, a string too), so a row of
 * hundreds of megabytes is never serialized whole only to be cut.
 */
function invalidBody(
  row: Record<string, unknown>,
  created: unknown,
  source: string,
  table: string,
  reason: string,
  maxBytes: number,
): Buffer {
  let size = 0;
  for (const v of Object.values(row)) size += roughSize(v);
  if (size <= maxBytes / 2) {
    // jsonb columns may come as the bytes of their JSON text (the relay's stream): carried as that text.
    const asText: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) asText[k] = Buffer.isBuffer(v) ? v.toString('utf8') : v;
    const whole = Buffer.from(JSON.stringify({ row: { ...asText, created_at: created }, source, table, reason }));
    if (whole.length <= maxBytes) return whole;
  }
  const cut: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    const bytes = Buffer.isBuffer(v) ? v.length : typeof v === 'string' ? Buffer.byteLength(v) : undefined;
    if (bytes !== undefined && bytes > 1024) {
      const head = Buffer.isBuffer(v) ? v.subarray(0, 1024).toString('utf8') : (v as string).slice(0, 1024);
      cut[k] = { truncated: head, bytes };
    } else if (bytes !== undefined) cut[k] = Buffer.isBuffer(v) ? v.toString('utf8') : v;
    else {
      const text = JSON.stringify(v) ?? String(v);
      cut[k] = text.length > 1024 ? { truncated: text.slice(0, 1024), bytes: Buffer.byteLength(text) } : v;
    }
  }
  if (created !== row.created_at) cut.created_at = created;
  return Buffer.from(JSON.stringify({ row: cut, source, table, reason }));
}

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

/**
 * The payload as the message body: the bytes of its JSON text when the jsonb column came as such (the relay's stream,
 * a Buffer of its own), else its text encoded, or the parsed value serialized (other callers).
 */
function payloadBytes(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  return Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload ?? null));
}

function parseObject(v: unknown): Record<string, unknown> | undefined {
  if (Buffer.isBuffer(v)) v = v.toString('utf8');
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return isPlainObject(v) ? (v as Record<string, unknown>) : undefined;
}

function invalidReason(
  row: Record<string, unknown>,
  id: string | undefined,
  headers: Record<string, unknown> | undefined,
): string | undefined {
  if (!id || !UUID.test(id)) return 'id is not a uuid';
  if (typeof row.aggregatetype !== 'string' || !WORD.test(row.aggregatetype))
    return 'aggregatetype is missing or not a routing word';
  if (typeof row.type !== 'string' || !WORD.test(row.type)) return 'type is missing or not a routing word';
  if (typeof row.aggregateid !== 'string' || row.aggregateid.length === 0) return 'aggregateid is missing';
  const p = row.payload;
  // jsonb text from PostgreSQL is normalized: an object starts with '{'.
  if (Buffer.isBuffer(p) ? p[0] !== 0x7b : typeof p === 'string' ? !p.startsWith('{') : !isPlainObject(p))
    return 'payload is not a JSON object';
  if (row.headers !== null && row.headers !== undefined && !headers) return 'headers is not a JSON object';
  return undefined;
}

/** The aggregate types of the catalogue: each is the service whose outbox holds its events. */
const CATALOGUE_AGGREGATES: ReadonlySet<string> = new Set(Object.values(EventCatalog).map((e) => e.aggregateType));

/**
 * A row that claims what another service publishes: an aggregate type of the catalogue other than its source's
 * (source names are service names), or a catalogue event under another aggregate type. Either would let one
 * service's database, through the relay's trusted signature, speak for another. Types the catalogue does not know
 * (tests, benchmarks, events newer than this code) pass as before: no consumer binds them.
 */
function provenanceProblem(row: Record<string, unknown>, source: string): string | undefined {
  const aggregateType = row.aggregatetype as string;
  const type = row.type as string;
  if (aggregateType !== source && CATALOGUE_AGGREGATES.has(aggregateType))
    return `aggregatetype ${aggregateType} does not belong to source ${source}`;
  if (isEventType(type) && EventCatalog[type].aggregateType !== aggregateType)
    return `${type} is an event of aggregatetype ${EventCatalog[type].aggregateType}, not ${aggregateType}`;
  return undefined;
}

/**
 * The row's headers followed by the aggregate headers (which win on a clash), in that order. Copied key by key: V8
 * builds `{ ...headers, [k]: v }` on a slow path that cost microseconds per message, the largest single item of
 * this codec. A `__proto__` key (JSON.parse makes it an own property) would set the copy's prototype if assigned:
 * that rare row takes the spread.
 */
function withAggregateHeaders(
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
function propertyProblem(routingKey: string, headers: Record<string, unknown> | undefined): string | undefined {
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

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
