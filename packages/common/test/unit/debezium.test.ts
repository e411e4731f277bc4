/**
 * Consumers read Debezium Server's outbox messages (see docs/debezium) as the same envelope as our relay's, in
 * every header and value format Debezium Server can be set to.
 */
import { decodeMessage, encodeOutboxRow } from '../../src/messaging/envelope-codec';
import { DEBEZIUM_HEADER, declaredType, isDebeziumShaped, messageIdentity } from '../../src/messaging/debezium';
import { EventCatalog, routingKeyOf, type EventType } from '../../src/contracts/catalog';
import { SERVICES } from '../../src/contracts/service-names';
import {
  debeziumConfig,
  debeziumMessage,
  jsonbText,
  type DebeziumFormat,
  type OutboxRow,
} from '../../../../test/support/debezium';

const orderId = '00000000-0000-4000-8000-0000000000aa';
const row: OutboxRow = {
  id: '00000000-0000-4000-8000-000000000001',
  aggregatetype: 'order',
  aggregateid: orderId,
  type: 'OrderCancelled',
  // null and an empty string must survive: a payload is never re-inferred from its JSON.
  payload: jsonbText({ version: 1, data: { orderId, reason: 'OUT_OF_STOCK', detail: null } }),
  headers: jsonbText({
    correlationId: orderId,
    causationId: '00000000-0000-4000-8000-000000000002',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  }),
};
const expected = {
  id: row.id,
  aggregateType: 'order',
  aggregateId: orderId,
  type: 'OrderCancelled',
  payload: { version: 1, data: { orderId, reason: 'OUT_OF_STOCK', detail: null } },
  headers: {
    correlationId: orderId,
    causationId: '00000000-0000-4000-8000-000000000002',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  },
};
const decode = (m: { content: Buffer; options: object }) =>
  decodeMessage({ content: m.content, properties: m.options as never });

describe('Debezium-shaped messages', () => {
  it('routes by the source prefix and the type, as the consumers are bound', () => {
    expect(debeziumMessage(row, 'order.$1').routingKey).toBe('order.OrderCancelled');
    expect(debeziumMessage(row, 'order.${routedByValue}').routingKey).toBe('order.OrderCancelled');
  });

  it.each(SERVICES)(
    'docs/debezium/%s routes every event of its database to the key its consumers are bound to',
    (service) => {
      const config = debeziumConfig(service);
      expect(config.get('debezium.sink.rabbitmq.exchange')).toBe('saga.events');
      expect(config.get('debezium.sink.rabbitmq.routingKeyFromTopicName')).toBe('true');
      expect(config.get('debezium.source.publication.name')).toBe('outbox_pub');
      expect(config.get('debezium.transforms.outbox.route.by.field')).toBe('type');
      // The formats the decoder is tested with above.
      expect(config.get('debezium.format.value')).toBe('simplestring');
      expect(config.get('debezium.format.header')).toBe('json');
      expect(config.get('debezium.format.header.schemas.enable')).toBe('false');
      const placement = config.get('debezium.transforms.outbox.table.fields.additional.placement')!.split(',');
      expect(placement.sort()).toEqual(
        [
          `aggregateid:header:${DEBEZIUM_HEADER.aggregateId}`,
          `aggregatetype:header:${DEBEZIUM_HEADER.aggregateType}`,
          `headers:header:${DEBEZIUM_HEADER.outboxHeaders}`,
          `type:header:${DEBEZIUM_HEADER.type}`,
        ].sort(),
      );
      const published = (Object.keys(EventCatalog) as EventType[]).filter(
        (t) => EventCatalog[t].aggregateType === service,
      );
      expect(published.length).toBeGreaterThan(0);
      for (const type of published) {
        const m = debeziumMessage(
          { ...row, aggregatetype: service, type },
          config.get('debezium.transforms.outbox.route.topic.replacement')!,
        );
        expect(m.routingKey).toBe(routingKeyOf(type));
      }
    },
  );

  it.each<[string, DebeziumFormat]>([
    ['json headers without schemas, simplestring value (docs/debezium)', {}],
    ['json headers with schemas', { headerSchemas: true }],
    ['jsonbytearray headers', { header: 'jsonbytearray' }],
    ['json value: the payload as a JSON string', { value: 'json' }],
    ['json value with table.expand.json.payload', { value: 'json-expanded' }],
  ])('decodes to the envelope our relay gives: %s', (_name, format) => {
    expect(decode(debeziumMessage(row, 'order.$1', format))).toEqual(expected);
  });

  it('gives the same envelope as our relay for the same row', () => {
    const ours = encodeOutboxRow({ ...row, created_at: new Date() }, 'order', 'outbox');
    if (!ours.ok) throw new Error(ours.reason);
    expect(decode(ours)).toEqual(decode(debeziumMessage(row, 'order.$1')));
    expect(isDebeziumShaped(ours.options)).toBe(false);
  });

  it('tells id, type and correlation id before decoding, as for our messages', () => {
    const m = debeziumMessage(row, 'order.$1');
    expect(messageIdentity(m.options)).toEqual({ messageId: row.id, type: 'OrderCancelled', correlationId: orderId });
    expect(declaredType(m.options)).toBe('OrderCancelled');
    expect(messageIdentity({ messageId: 'm', type: 't', correlationId: 'c', headers: { id: 'x' } })).toEqual({
      messageId: 'm',
      type: 't',
      correlationId: 'c',
    });
  });

  it('names what is missing when a header did not come', () => {
    const m = debeziumMessage(row, 'order.$1');
    delete (m.options.headers as Record<string, unknown>)['x-outbox-headers'];
    expect(() => decode(m)).toThrow(/headers\.correlationId/);
  });
});
