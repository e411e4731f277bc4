/**
 * Messages as Debezium Server emits them with the configuration in docs/debezium (PostgreSQL source, Outbox Event
 * Router, RabbitMQ sink), read as the envelope our relay's messages carry. Consumers accept both, so the relay can
 * be replaced by Debezium without changing a service.
 *
 * What Debezium sends, and where it is documented:
 * - Debezium Server's RabbitMQ sink (`RabbitMqStreamChangeConsumer`, debezium-server-rabbitmq) publishes each record
 *   with only `deliveryMode` and `headers` set: no `messageId`, `type`, `correlationId`, `contentType` or `timestamp`.
 *   The routing key is the record's topic (`routingKeyFromTopicName=true`).
 * - The Outbox Event Router (https://debezium.io/documentation/reference/transformations/outbox-event-router.html)
 *   puts the event id in the header `id` (`table.field.event.id`), other columns where
 *   `table.fields.additional.placement` says (here `type`, `x-aggregate-type`, `x-aggregate-id` and the `headers`
 *   column as `x-outbox-headers`), and the payload column as the value.
 * - Debezium Server converts header values with Kafka's JsonConverter (`debezium.format.header=json`): a string
 *   column arrives as JSON text (`"OrderPlaced"`, with the quotes), wrapped in `{"schema", "payload"}` unless
 *   `schemas.enable=false`; `jsonbytearray` sends the same text as bytes. A jsonb column is a string in Debezium, so
 *   the `headers` column is JSON text inside that JSON text.
 * - The value: with `debezium.format.value=simplestring` (our configuration) the payload column's JSON text as is;
 *   with `json` a JSON string holding it, or the object itself when `table.expand.json.payload=true`.
 */

/** Header names Debezium's Outbox Event Router places, as docs/debezium configures it. */
export const DEBEZIUM_HEADER = {
  /** The outbox id, the router's default placement of `table.field.event.id`. */
  id: 'id',
  type: 'type',
  aggregateType: 'x-aggregate-type',
  aggregateId: 'x-aggregate-id',
  /** The outbox `headers` column (correlationId, causationId, traceparent, …). */
  outboxHeaders: 'x-outbox-headers',
} as const;

type Properties = { messageId?: unknown; type?: unknown; correlationId?: unknown; headers?: unknown };

/**
 * A message without an AMQP `messageId` but with an `id` header is taken for Debezium's: our relay always sets the
 * message id, and Debezium's sink never does.
 */
export function isDebeziumShaped(properties: Properties): boolean {
  const h = properties.headers as Record<string, unknown> | undefined;
  return (
    (properties.messageId === undefined || properties.messageId === null) &&
    h !== undefined &&
    h !== null &&
    h[DEBEZIUM_HEADER.id] !== undefined
  );
}

/** The event type a message declares before it is decoded: the AMQP `type`, or Debezium's `type` header. */
export function declaredType(properties: Properties): unknown {
  if (!isDebeziumShaped(properties)) return properties.type;
  return headerValue((properties.headers as Record<string, unknown>)[DEBEZIUM_HEADER.type]);
}

/** Id, type and correlation id of a message as sent by either publisher, before it is decoded (for logs and metrics). */
export function messageIdentity(properties: Properties): { messageId: unknown; type: unknown; correlationId: unknown } {
  if (!isDebeziumShaped(properties))
    return { messageId: properties.messageId, type: properties.type, correlationId: properties.correlationId };
  const h = properties.headers as Record<string, unknown>;
  const outbox = headerValue(h[DEBEZIUM_HEADER.outboxHeaders]);
  let correlationId: unknown;
  try {
    correlationId =
      typeof outbox === 'string' ? (JSON.parse(outbox) as { correlationId?: unknown }).correlationId : undefined;
  } catch {
    correlationId = undefined;
  }
  return { messageId: headerValue(h[DEBEZIUM_HEADER.id]), type: headerValue(h[DEBEZIUM_HEADER.type]), correlationId };
}

/**
 * The properties, headers and body our relay would have sent for the same outbox row: message id and type from
 * their headers, the outbox `headers` column spread into the AMQP headers (as the relay does), the body as the
 * payload's JSON text. Values that do not decode are left out, so the envelope check names what is missing.
 */
export function fromDebezium<P extends Properties>(msg: {
  content: Buffer;
  properties: P;
}): { content: Buffer; properties: P } {
  const h = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const outbox = jsonObject(headerValue(h[DEBEZIUM_HEADER.outboxHeaders])) ?? {};
  const text = (v: unknown) => {
    const value = headerValue(v);
    return typeof value === 'string' ? value : undefined;
  };
  const headers: Record<string, unknown> = { ...outbox };
  headers[DEBEZIUM_HEADER.aggregateType] = text(h[DEBEZIUM_HEADER.aggregateType]);
  headers[DEBEZIUM_HEADER.aggregateId] = text(h[DEBEZIUM_HEADER.aggregateId]);
  return {
    content: payloadContent(msg.content),
    properties: {
      ...msg.properties,
      messageId: text(h[DEBEZIUM_HEADER.id]),
      type: text(h[DEBEZIUM_HEADER.type]),
      correlationId: typeof outbox.correlationId === 'string' ? outbox.correlationId : undefined,
      headers,
    },
  };
}

/** A header value as JsonConverter wrote it (text or bytes, with or without the schema envelope), decoded. */
export function headerValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) v = v.toString('utf8');
  if (typeof v !== 'string') return v;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    // Not JSON: a header set by hand or by another converter; take it as it is.
    return v;
  }
  if (isObject(parsed) && 'schema' in parsed && 'payload' in parsed) return parsed.payload;
  return parsed;
}

/** A jsonb column: an object, or (as Debezium carries jsonb) its JSON text. */
function jsonObject(v: unknown): Record<string, unknown> | undefined {
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return isObject(v) ? v : undefined;
}

/** The payload's JSON text: unwraps a JSON string holding it (JSON value format without expansion). */
function payloadContent(content: Buffer): Buffer {
  // Only a body that is a JSON string needs unwrapping; an object (simplestring or expanded) is the payload already.
  if (content[0] !== 0x22) return content;
  try {
    const inner: unknown = JSON.parse(content.toString('utf8'));
    return typeof inner === 'string' ? Buffer.from(inner) : content;
  } catch {
    return content;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
