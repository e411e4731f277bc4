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
 */
export function toAmqpMessage(row: Record<string, unknown>, source: string, table: string): AmqpMessage {
  const headers = isPlainObject(row.headers) ? (row.headers as Record<string, unknown>) : {};
  const createdAt = row.created_at instanceof Date ? row.created_at : new Date(String(row.created_at ?? ''));
  const timestamp = Number.isNaN(createdAt.getTime()) ? Math.floor(Date.now() / 1000) : Math.floor(createdAt.getTime() / 1000);
  const id = typeof row.id === 'string' ? row.id : undefined;
  const correlationId = typeof headers.correlationId === 'string' ? headers.correlationId : undefined;
  const base: Options.Publish = {
    persistent: true,
    contentType: 'application/json',
    timestamp,
    ...(id ? { messageId: id } : {}),
    ...(correlationId ? { correlationId } : {}),
    ...(typeof row.type === 'string' ? { type: row.type } : {}),
    appId: 'cdc-relay',
  };
  const amqpHeaders: Record<string, unknown> = {
    ...headers,
    'x-aggregate-type': row.aggregatetype,
    'x-aggregate-id': row.aggregateid,
    'x-outbox-source': source,
  };
  const reason = invalidReason(row, id);
  const content = Buffer.from(row.payload === undefined ? 'null' : JSON.stringify(row.payload));
  if (reason) {
    return {
      ok: false,
      reason,
      content: Buffer.from(JSON.stringify({ row: { ...row, created_at: undefined }, source, table })),
      options: { ...base, headers: { ...amqpHeaders, 'x-invalid-reason': reason } },
    };
  }
  return { ok: true, routingKey: `${row.aggregatetype as string}.${row.type as string}`, content, options: { ...base, mandatory: true, headers: amqpHeaders } };
}

function invalidReason(row: Record<string, unknown>, id: string | undefined): string | undefined {
  if (!id || !UUID.test(id)) return 'id is not a uuid';
  if (typeof row.aggregatetype !== 'string' || !WORD.test(row.aggregatetype)) return 'aggregatetype is missing or not a routing word';
  if (typeof row.type !== 'string' || !WORD.test(row.type)) return 'type is missing or not a routing word';
  if (typeof row.aggregateid !== 'string' || row.aggregateid.length === 0) return 'aggregateid is missing';
  if (!isPlainObject(row.payload)) return 'payload is not a JSON object';
  if (row.headers !== null && row.headers !== undefined && !isPlainObject(row.headers)) return 'headers is not a JSON object';
  return undefined;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
