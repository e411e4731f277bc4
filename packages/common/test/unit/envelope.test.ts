/**
 * The envelope codec against amqplib's own encoder: every row it accepts encodes, and every member of the class of
 * rows amqplib or RabbitMQ refuse is turned into an invalid-queue message that does encode.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  decodeMessage,
  encodeInvalid,
  encodeOutboxRow,
  HEADER,
  type EncodedMessage,
} from '../../src/messaging/envelope-codec';

/** A module inside amqplib's package, by path (it is not in amqplib's exports map). */
const load = createRequire(__filename);
const amqplibInternal = (file: string): unknown => load(join(dirname(load.resolve('amqplib')), file));

// amqplib's frame encoders (not a public API, and not in its exports map: reached by path, only here, to prove the
// codec's checks match them).
const defs = amqplibInternal('lib/defs.js') as {
  encodeMethod: (id: number, channel: number, fields: Record<string, unknown>) => Buffer;
  encodeProperties: (id: number, channel: number, size: number, fields: Record<string, unknown>) => Buffer;
  BasicPublish: number;
  BasicProperties: number;
};

/** Encode as amqplib's publish would (method frame + content header frame); throws where amqplib throws. */
function amqpEncode(exchange: string, routingKey: string, m: EncodedMessage): void {
  const o = m.options;
  defs.encodeMethod(defs.BasicPublish, 1, {
    exchange,
    routingKey,
    mandatory: !!o.mandatory,
    immediate: false,
    ticket: 0,
  });
  defs.encodeProperties(defs.BasicProperties, 1, m.content.length, {
    contentType: o.contentType,
    headers: o.headers,
    deliveryMode: o.persistent ? 2 : 1,
    correlationId: o.correlationId,
    messageId: o.messageId,
    timestamp: o.timestamp,
    type: o.type,
    appId: o.appId,
  });
}

const good = (extra: Record<string, unknown> = {}) => ({
  id: '00000000-0000-4000-8000-000000000001',
  aggregatetype: 'order',
  aggregateid: 'o1',
  type: 'OrderPlaced',
  payload: '{"version": 1, "data": {"orderId": "o1"}}',
  headers: '{"correlationId": "o1", "causationId": null}',
  created_at: new Date('2026-01-01T00:00:00Z'),
  ...extra,
});
const withHeaders = (h: Record<string, unknown> | string) =>
  good({ headers: typeof h === 'string' ? h : JSON.stringify(h) });

describe('envelope codec', () => {
  it("diverts a row that claims another service's aggregate or event, with the reason", () => {
    const forged = encodeOutboxRow(good({ aggregatetype: 'inventory', type: 'StockReserved' }), 'order', 'outbox');
    expect(forged).toMatchObject({ ok: false, reason: 'aggregatetype inventory does not belong to source order' });
    expect(forged.options.headers).toMatchObject({
      'x-invalid-reason': 'aggregatetype inventory does not belong to source order',
      'x-outbox-source': 'order',
    });
    expect(encodeOutboxRow(good({ type: 'PaymentAuthorized' }), 'order', 'outbox')).toMatchObject({
      ok: false,
      reason: 'PaymentAuthorized is an event of aggregatetype payment, not order',
    });
    // The source's own events, and types the catalogue does not know, go out as before.
    expect(encodeOutboxRow(good({ aggregatetype: 'inventory', type: 'StockReserved' }), 'inventory', 'outbox').ok).toBe(
      true,
    );
    expect(encodeOutboxRow(good({ aggregatetype: 'test', type: 'Tested' }), 'order', 'outbox').ok).toBe(true);
  });

  it('encodes an outbox row as routing key, properties and headers, and decodes it back to the envelope', () => {
    const m = encodeOutboxRow(good(), 'order', 'outbox');
    expect(m.ok).toBe(true);
    if (!m.ok) return;
    expect(m.routingKey).toBe('order.OrderPlaced');
    expect(m.options).toMatchObject({
      persistent: true,
      mandatory: true,
      messageId: good().id,
      correlationId: 'o1',
      type: 'OrderPlaced',
      timestamp: Date.parse('2026-01-01T00:00:00Z') / 1000,
      headers: {
        [HEADER.aggregateType]: 'order',
        [HEADER.aggregateId]: 'o1',
        [HEADER.source]: 'order',
        causationId: null,
      },
    });
    expect(() => amqpEncode('saga.events', m.routingKey, m)).not.toThrow();
    expect(decodeMessage({ content: m.content, properties: m.options as never })).toEqual({
      id: good().id,
      aggregateType: 'order',
      aggregateId: 'o1',
      type: 'OrderPlaced',
      payload: { version: 1, data: { orderId: 'o1' } },
      headers: { correlationId: 'o1', causationId: null },
    });
  });

  it('decodeMessage refuses a body that is not JSON', () => {
    const m = encodeOutboxRow(good(), 'order', 'outbox');
    expect(() => decodeMessage({ content: Buffer.from('nope'), properties: m.options as never })).toThrow(
      'body is not valid JSON',
    );
  });

  // Each member of the class amqplib's encoder or RabbitMQ refuses. For each, the unguarded message
  // really fails in amqplib (or exceeds a broker limit), the codec answers ok:false with the reason, and the
  // invalid-queue message it makes instead encodes.
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'routing key over 255 bytes',
      good({ aggregatetype: 'a'.repeat(100), type: 'T'.repeat(199) }),
      /routing key is over 255 bytes/,
    ],
    [
      'correlationId over 255 bytes',
      withHeaders({ correlationId: 'é'.repeat(130) }),
      /correlationId is over 255 bytes/,
    ],
    ['correlationId not a string', withHeaders({ correlationId: 42 }), /correlationId is not a string/],
    ['header name over 255 bytes', withHeaders({ correlationId: 'o1', ['k'.repeat(256)]: 1 }), /key over 255 bytes/],
    [
      'header number below the signed 64-bit range',
      withHeaders('{"correlationId": "o1", "n": -1e20}'),
      /does not fit an AMQP integer/,
    ],
    [
      'header fraction at or above 2^50',
      withHeaders('{"correlationId": "o1", "n": 1125899906842624.5}'),
      /does not fit an AMQP integer/,
    ],
    [
      'header number jsonb holds but a double cannot (-1e400)',
      withHeaders('{"correlationId": "o1", "n": -1e400}'),
      /not a finite number/,
    ],
    [
      "header object with a '!' key (amqplib typed value)",
      withHeaders({ correlationId: 'o1', t: { '!': 'timestamp', value: -1 } }),
      /'!' key/,
    ],
    [
      'header table over the encoding buffer',
      withHeaders({ correlationId: 'o1', big: 'x'.repeat(70_000) }),
      /headers encode to about/,
    ],
    ['created_at before 1970', good({ created_at: new Date('1969-12-31T00:00:00Z') }), /before 1970/],
  ];
  it("answers a top-level '!' header the same whatever the other headers are (regression: a flat table skipped the check)", () => {
    for (const headers of [
      { correlationId: 'o1', '!': 'x' },
      { correlationId: 'o1', '!': 'x', n: 1 },
    ]) {
      const m = encodeOutboxRow(withHeaders(headers), 'order', 'outbox');
      expect([Object.keys(headers).length, m.ok, m.ok ? '' : m.reason]).toEqual([
        Object.keys(headers).length,
        false,
        expect.stringMatching(/'!' key/),
      ]);
    }
  });
  it.each(cases)('refuses %s with the reason, and its invalid-queue copy encodes', (_what, row, reason) => {
    const m = encodeOutboxRow(row, 'order', 'outbox');
    expect(m.ok).toBe(false);
    if (m.ok) return;
    expect(m.reason).toMatch(reason);
    expect(m.options.headers![HEADER.invalidReason]).toMatch(reason);
    expect(m.options.mandatory).toBe(true);
    expect(() => amqpEncode('', 'saga.events.invalid', m)).not.toThrow();
    expect(JSON.parse(m.content.toString()).row.aggregateid).toBe(row.aggregateid);
  });

  it.each(cases.filter(([what]) => !/table over/.test(what)))('control: amqplib itself throws on %s', (_what, row) => {
    // Build what the relay would have sent without the checks.
    const h = JSON.parse(row.headers as string) as Record<string, unknown>;
    const created = row.created_at as Date;
    const unguarded = {
      ok: true,
      routingKey: `${row.aggregatetype as string}.${row.type as string}`,
      content: Buffer.from(row.payload as string),
      options: {
        persistent: true,
        messageId: row.id as string,
        correlationId: h.correlationId as string,
        type: row.type as string,
        timestamp: Math.floor(created.getTime() / 1000),
        headers: { ...h, [HEADER.aggregateType]: row.aggregatetype },
      },
    } as EncodedMessage & { routingKey: string };
    expect(() => amqpEncode('saga.events', unguarded.routingKey, unguarded)).toThrow();
  });

  it('refuses a body over the broker limit and carries the row cut to what fits', () => {
    const big = `{"version": 1, "data": "${'x'.repeat(5000)}"}`;
    const m = encodeOutboxRow(good({ payload: big }), 'order', 'outbox', {
      maxBodyBytes: 4096,
      maxHeaderBytes: 60_000,
    });
    expect(m.ok).toBe(false);
    if (m.ok) return;
    expect(m.reason).toMatch(/over the broker's limit of 4096/);
    expect(m.content.length).toBeLessThan(4096);
    expect(JSON.parse(m.content.toString()).row.payload.bytes).toBe(big.length);
  });

  it('refuses headers over a small negotiated frame', () => {
    const m = encodeOutboxRow(withHeaders({ correlationId: 'o1', v: 'x'.repeat(4000) }), 'order', 'outbox', {
      maxBodyBytes: 1e9,
      maxHeaderBytes: 3072,
    });
    expect(m.ok).toBe(false);
  });
  it('encodes a row whose jsonb columns came as the bytes of their text (the relay stream) as it encodes the text', () => {
    const text = good({ payload: '{"version": 1, "data": {"name": "Zoë ✓"}}' });
    const bytes = { ...text, payload: Buffer.from(text.payload as string), headers: Buffer.from(text.headers) };
    const a = encodeOutboxRow(text, 'order', 'outbox');
    const b = encodeOutboxRow(bytes, 'order', 'outbox');
    expect(b).toEqual(a);
    expect(b.content.toString('utf8')).toBe(text.payload);
    // ...and its invalid-queue copy carries them as that text, not as a serialized Buffer.
    const bad = encodeOutboxRow({ ...bytes, type: 'not a word' }, 'order', 'outbox');
    expect(bad.ok).toBe(false);
    expect(JSON.parse(bad.content.toString()).row).toMatchObject({ payload: text.payload, headers: text.headers });
    expect(encodeOutboxRow({ ...bytes, payload: Buffer.from('[1]') }, 'order', 'outbox')).toMatchObject({
      ok: false,
      reason: 'payload is not a JSON object',
    });
    expect(encodeOutboxRow({ ...bytes, headers: Buffer.from('[1]') }, 'order', 'outbox')).toMatchObject({
      ok: false,
      reason: 'headers is not a JSON object',
    });
  });

  it("keeps the row's headers in order before the aggregate headers, which win a clash, as own properties only", () => {
    const m = encodeOutboxRow(
      withHeaders('{"b": 1, "a": "x", "x-aggregate-id": "forged", "correlationId": "o1"}'),
      'order',
      'outbox',
    );
    expect(Object.keys(m.options.headers!)).toEqual([
      'b',
      'a',
      HEADER.aggregateId,
      'correlationId',
      HEADER.aggregateType,
      HEADER.source,
    ]);
    expect(m.options.headers![HEADER.aggregateId]).toBe('o1');
    // JSON.parse makes "__proto__" an own key: it must stay a header, not become the table's prototype.
    const p = encodeOutboxRow(
      withHeaders('{"correlationId": "o1", "__proto__": {"injected": "yes"}}'),
      'order',
      'outbox',
    );
    expect(p.ok).toBe(true);
    const h = p.options.headers!;
    expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
    expect(Object.hasOwn(h, '__proto__')).toBe(true);
    expect((h as Record<string, unknown>).injected).toBeUndefined();
    expect(Object.keys(h)).toEqual([
      'correlationId',
      '__proto__',
      HEADER.aggregateType,
      HEADER.aggregateId,
      HEADER.source,
    ]);
  });

  it('sizes a header table exactly when the quick bound is over the limit (multi-byte text near the limit)', () => {
    // 'é' is 2 bytes: the table is about 2,100 bytes, its 3-bytes-per-character bound about 3,100, the limit 3,072.
    const m = encodeOutboxRow(withHeaders({ correlationId: 'o1', v: 'é'.repeat(1000) }), 'order', 'outbox', {
      maxBodyBytes: 1e9,
      maxHeaderBytes: 3072,
    });
    expect(m.ok).toBe(true);
    const over = encodeOutboxRow(withHeaders({ correlationId: 'o1', v: 'é'.repeat(1600) }), 'order', 'outbox', {
      maxBodyBytes: 1e9,
      maxHeaderBytes: 3072,
    });
    expect(over).toMatchObject({ ok: false });
  });

  it.each([
    ['CC as a string', { CC: 'audit.copy' }],
    ['CC as an array', { CC: ['audit.copy'] }],
    ['BCC', { BCC: ['hidden.copy'] }],
  ])('refuses a header RabbitMQ routes by (%s): the broker would close the channel or copy the event', (_n, h) => {
    const m = encodeOutboxRow(withHeaders({ correlationId: 'o1', ...h }), 'order', 'outbox');
    expect(m.ok).toBe(false);
    expect(m.ok === false && m.reason).toMatch(/^headers\.B?CC is not allowed/);
    expect(() => amqpEncode('', 'saga.events.invalid', m)).not.toThrow();
  });

  it('cuts an oversized row for the invalid queue without turning the large column into text whole', () => {
    const payload = Buffer.alloc(5_000_000, 'x');
    const toString = jest.spyOn(Buffer.prototype, 'toString');
    try {
      const m = encodeInvalid(good({ payload }), 'order', 'outbox', 'too large', {
        maxBodyBytes: 65_536,
        maxHeaderBytes: 1024,
      });
      expect(m.content.length).toBeLessThan(65_536);
      expect(JSON.parse(m.content.toString()).row.payload).toEqual({ truncated: 'x'.repeat(1024), bytes: 5_000_000 });
      const converted = toString.mock.contexts.map((b) => (b as Buffer).length);
      expect(Math.max(...converted)).toBeLessThan(100_000);
    } finally {
      toString.mockRestore();
    }
  });
});
