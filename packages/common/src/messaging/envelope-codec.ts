/**
 * The one envelope codec: an outbox row (Debezium outbox columns) <-> an AMQP message (routing key, properties,
 * headers, body). The relay encodes with it, consumers decode with it, tests read the header names from it.
 *
 * Its parts: header names and header checks (envelope-headers.ts), row checks (envelope-row.ts), decoding
 * (envelope-decode.ts); the encoding of a row, valid or not, is here.
 */
import { randomUUID } from 'node:crypto';
import type { Options } from 'amqplib';
import { routingKeyFor } from '../contracts/catalog';
import { HEADER, propertyProblem, SHORTSTR, tableProblem, withAggregateHeaders } from './envelope-headers';
import { invalidReason, parseObject, provenanceProblem, UUID } from './envelope-row';

export { DEAD_LETTER_HEADER, HEADER, tableProblem } from './envelope-headers';
export { decodeMessage } from './envelope-decode';

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
 * The payload as the message body: the bytes of its JSON text when the jsonb column came as such (the relay's stream,
 * a Buffer of its own), else its text encoded, or the parsed value serialized (other callers).
 */
function payloadBytes(payload: unknown): Buffer {
  if (Buffer.isBuffer(payload)) return payload;
  return Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload ?? null));
}
