/** The publisher's reused header table: what amqplib encodes is what the message's own headers encode. */
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { amqplibModule } from '@saga/common/runtime/library-internals';
import { reusedHeaders } from '../../src/publisher';

// amqplib's frame encoder (not a public API): reached by path, only in tests, to compare the bytes it writes.
const defs = amqplibModule('lib/defs.js') as {
  encodeProperties: (id: number, channel: number, size: number, fields: Record<string, unknown>) => Buffer;
  BasicProperties: number;
};
const Args = amqplibModule('lib/api_args.js') as {
  publish: (exchange: string, routingKey: string, options: Record<string, unknown>) => Record<string, unknown>;
};
/** The content header frame amqplib's publish writes for these headers. */
const frame = (headers: Record<string, unknown>) =>
  defs.encodeProperties(defs.BasicProperties, 1, 10, Args.publish('x', 'k', { messageId: 'm', headers }));

describe('reused header table', () => {
  it('encodes each message exactly as its own headers, across changing values and changing name lists', () => {
    const reuse = reusedHeaders();
    const tables: Record<string, unknown>[] = [
      { correlationId: 'c1', causationId: null, 'x-aggregate-id': 'o1' },
      { correlationId: 'c2', causationId: 'e1', 'x-aggregate-id': 'o2' },
      { correlationId: 'c3', traceparent: '00-aa-bb-01', 'x-aggregate-id': 'o3' },
      { causationId: 'e2', correlationId: 'c4', 'x-aggregate-id': 'o4' },
      {
        correlationId: 'c5',
        causationId: null,
        'x-aggregate-id': 'o5',
        n: 7,
        nested: { a: [1, 'b'] },
        t: true,
        u: undefined,
      },
      {
        correlationId: 'c6',
        causationId: null,
        'x-aggregate-id': 'o6',
        n: 8,
        nested: { a: [] },
        t: false,
        u: undefined,
      },
      {},
      { correlationId: 'c7', causationId: null, 'x-aggregate-id': 'o7' },
    ];
    for (const h of tables) {
      const copy = structuredClone(h);
      expect(frame(reuse(h))).toEqual(frame(h));
      expect(h).toEqual(copy);
    }
  });

  it('reuses one object while the names stay the same, and never the caller’s', () => {
    const reuse = reusedHeaders();
    const a = { correlationId: 'c1', causationId: null };
    const b = { correlationId: 'c2', causationId: 'e1' };
    const ta = reuse(a);
    expect(ta).not.toBe(a);
    expect(reuse(b)).toBe(ta);
    expect(ta).toEqual(b);
    expect(a).toEqual({ correlationId: 'c1', causationId: null });
  });

  it('passes a __proto__ header or a table that is not a plain object through as it is', () => {
    const reuse = reusedHeaders();
    const m = encodeOutboxRow(
      {
        id: '00000000-0000-4000-8000-000000000001',
        aggregatetype: 'order',
        aggregateid: 'o1',
        type: 'OrderPlaced',
        payload: '{"a": 1}',
        headers: '{"correlationId": "o1", "__proto__": {"x": 1}}',
        created_at: new Date(),
      },
      'order',
      'outbox',
    );
    const h = m.options.headers!;
    expect(reuse(h)).toBe(h);
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    expect(reuse(bare)).toBe(bare);
  });
});
