/**
 * Messages shaped byte for byte like Debezium Server's with the configuration in docs/debezium: PostgreSQL source
 * (pgoutput), Outbox Event Router, RabbitMQ sink. Built from Debezium's documented behaviour, not from our code:
 * - RabbitMQ sink (debezium-server-rabbitmq, `RabbitMqStreamChangeConsumer.handleBatch`): `basicPublish(exchange,
 *   topic, BasicProperties{deliveryMode, headers}, value)`; no other property is set.
 * - Outbox Event Router (debezium.io/documentation/reference/transformations/outbox-event-router.html): the event id
 *   in header `id`, `table.fields.additional.placement` columns in the headers named there, the payload column as
 *   the value, the topic `route.topic.replacement` with `${routedByValue}` = the `route.by.field` column.
 * - Debezium Server formats (debezium.io/documentation/reference/operations/debezium-server.html, "Message
 *   format"): headers through Kafka's JsonConverter (`json`: a Java String, which the RabbitMQ Java client writes as a
 *   long string; `jsonbytearray`: bytes), `schemas.enable` false in our configuration; the value with `simplestring`
 *   is the column's text. PostgreSQL sends jsonb as its text form (`{"a": 1, "bb": 2}`: keys by length, then bytes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Options } from 'amqplib';
import { DEBEZIUM_HEADER } from '@saga/common/messaging/debezium';
import type { ServiceName } from '@saga/common/contracts/service-names';

/** docs/debezium/<service>/application.properties as key -> value (the subset of the format we write there). */
export function debeziumConfig(service: ServiceName): Map<string, string> {
  const text = readFileSync(join(__dirname, '../../docs/debezium', service, 'application.properties'), 'utf8');
  const entries = text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf('=')).trim(), l.slice(l.indexOf('=') + 1).trim()] as [string, string]);
  return new Map(entries);
}

/** An outbox row as pgoutput delivers it to Debezium: jsonb columns as PostgreSQL's text. */
export type OutboxRow = {
  id: string;
  aggregatetype: string;
  aggregateid: string;
  type: string;
  payload: string;
  headers: string;
};

export type DebeziumFormat = {
  /** `debezium.format.header`: json (default) or jsonbytearray. */
  header?: 'json' | 'jsonbytearray';
  /** `debezium.format.header.schemas.enable` (JsonConverter's default is true; docs/debezium sets false). */
  headerSchemas?: boolean;
  /** `debezium.format.value`: simplestring (docs/debezium), json (a JSON string), json with `table.expand.json.payload`. */
  value?: 'simplestring' | 'json' | 'json-expanded';
};

/** PostgreSQL's jsonb output: keys ordered by length then bytes, `": "` and `", "` separators. */
export function jsonbText(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(jsonbText).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined);
    keys.sort((a, b) => Buffer.byteLength(a) - Buffer.byteLength(b) || Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${JSON.stringify(k)}: ${jsonbText((v as Record<string, unknown>)[k])}`).join(', ')}}`;
  }
  return JSON.stringify(v);
}

/** A string header through JsonConverter; `semantic` is Debezium's logical type name of the column, if any. */
function header(value: string, format: DebeziumFormat, semantic?: string): string | Buffer {
  const schema = { type: 'string', optional: false, ...(semantic ? { name: semantic, version: 1 } : {}) };
  const text = format.headerSchemas ? JSON.stringify({ schema, payload: value }) : JSON.stringify(value);
  return format.header === 'jsonbytearray' ? Buffer.from(text) : text;
}

/**
 * The AMQP publish Debezium Server makes for `row`, with `routeReplacement` the source's `route.topic.replacement`
 * (e.g. `order.$1`, routing by `type`): the router's RegexRouter matches `route.topic.regex` (default
 * `(?<routedByValue>.*)`) against the routed column and replaces, as Java's Matcher does (and JavaScript's replace).
 */
export function debeziumMessage(
  row: OutboxRow,
  routeReplacement: string,
  format: DebeziumFormat = {},
): { routingKey: string; content: Buffer; options: Options.Publish } {
  const f: DebeziumFormat = { header: 'json', headerSchemas: false, value: 'simplestring', ...format };
  const value =
    f.value === 'simplestring'
      ? row.payload
      : f.value === 'json'
        ? JSON.stringify(row.payload)
        : JSON.stringify(JSON.parse(row.payload));
  return {
    routingKey: row.type.replace(
      /^(?<routedByValue>.*)$/,
      routeReplacement.replace('${routedByValue}', '$<routedByValue>'),
    ),
    content: Buffer.from(value),
    options: {
      deliveryMode: 2,
      headers: {
        [DEBEZIUM_HEADER.id]: header(row.id, f, 'io.debezium.data.Uuid'),
        [DEBEZIUM_HEADER.type]: header(row.type, f),
        [DEBEZIUM_HEADER.aggregateType]: header(row.aggregatetype, f),
        [DEBEZIUM_HEADER.aggregateId]: header(row.aggregateid, f),
        [DEBEZIUM_HEADER.outboxHeaders]: header(row.headers, f, 'io.debezium.data.Json'),
      },
    },
  };
}
