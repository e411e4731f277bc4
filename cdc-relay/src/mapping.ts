import type { Options } from 'amqplib';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WORD = /^[A-Za-z0-9_.-]{1,200}$/;

export type AmqpMessage =
  | { ok: true; routingKey: string; content: Buffer; options: Options.Publish }
  | { ok: false; reason: string; content: Buffer; options: Options.Publish };

/**
 * An outbox row (Debezium outbox columns, as pgoutput decoded them) as an AMQP message: routing key
 * `<aggregatetype>.<type>`, messageId = outbox id, correlationId from the row's headers, the headers as AMQP
 * headers, body = payload. A row that cannot be an event comes back with the reason, to be kept for an operator.
 *
 * Hot path: `payload` arrives as the JSON text PostgreSQL sent (the relay registers a pass-through jsonb parser),
 * so the body is that text, never parsed and serialized again; only the small headers object is parsed.
 */
export function toAmqpMessage(row: Record<string, unknown>, source: string, table: string): AmqpMessage {
  const headers = parseObject(row.headers);
  const created = row.created_at;
  const ms = created instanceof Date ? created.getTime() : Date.parse(String(created ?? ''));
  const timestamp = Math.floor((Number.isNaN(ms) ? Date.now() : ms) / 1000);
  const id = typeof row.id === 'string' ? row.id : undefined;
  const correlationId = typeof headers?.correlationId === 'string' ? headers.correlationId : undefined;
  const amqpHeaders: Record<string, unknown> = {
    ...headers,
    'x-aggregate-type': row.aggregatetype,
    'x-aggregate-id': row.aggregateid,
    'x-outbox-source': source,
  };
  const options: Options.Publish = {
    persistent: true,
    contentType: 'application/json',
    timestamp,
    messageId: id,
    correlationId,
    type: typeof row.type === 'string' ? row.type : undefined,
    appId: 'cdc-relay',
    headers: amqpHeaders,
  };
  const reason = invalidReason(row, id, headers);
  if (reason) {
    amqpHeaders['x-invalid-reason'] = reason;
    return { ok: false, reason, content: Buffer.from(JSON.stringify({ row: { ...row, created_at: undefined }, source, table })), options };
  }
  options.mandatory = true;
  return { ok: true, routingKey: `${row.aggregatetype as string}.${row.type as string}`, content: Buffer.from(payloadText(row.payload)), options };
}

/** The payload's JSON text, whether the jsonb column came as text (relay) or already parsed (other callers). */
function payloadText(payload: unknown): string {
  return typeof payload === 'string' ? payload : JSON.stringify(payload ?? null);
}

function parseObject(v: unknown): Record<string, unknown> | undefined {
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return isPlainObject(v) ? (v as Record<string, unknown>) : undefined;
}

function invalidReason(row: Record<string, unknown>, id: string | undefined, headers: Record<string, unknown> | undefined): string | undefined {
  if (!id || !UUID.test(id)) return 'id is not a uuid';
  if (typeof row.aggregatetype !== 'string' || !WORD.test(row.aggregatetype)) return 'aggregatetype is missing or not a routing word';
  if (typeof row.type !== 'string' || !WORD.test(row.type)) return 'type is missing or not a routing word';
  if (typeof row.aggregateid !== 'string' || row.aggregateid.length === 0) return 'aggregateid is missing';
  const p = row.payload;
  // jsonb text from PostgreSQL is normalized: an object starts with '{'.
  if (typeof p === 'string' ? !p.startsWith('{') : !isPlainObject(p)) return 'payload is not a JSON object';
  if (row.headers !== null && row.headers !== undefined && !headers) return 'headers is not a JSON object';
  return undefined;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
