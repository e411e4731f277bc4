/** The relay's publish encoder writes, byte for byte, what amqplib's own encoders write for the same publish. */
import { toAmqpMessage } from '../../src/mapping';
import { amqplibModule } from '@saga/common/runtime/library-internals';
import { encodePublish } from '../../src/publish-frames';

type Fields = Record<string, unknown>;
const defs = amqplibModule('lib/defs.js') as {
  encodeMethod: (id: number, channel: number, fields: Fields) => Buffer;
  encodeProperties: (id: number, channel: number, size: number, fields: Fields) => Buffer;
  BasicPublish: number;
  BasicProperties: number;
};
const frame = amqplibModule('lib/frame.js') as { makeBodyFrame: (channel: number, payload: Buffer) => Buffer };
const Args = amqplibModule('lib/api_args.js') as {
  publish: (exchange: string, routingKey: string, options: Fields) => Fields;
};

/** The bytes amqplib's Connection.sendMessage writes for this publish, whichever branch it takes. */
function amqplibBytes(channel: number, frameMax: number, fieldsAndProps: Fields, content: Buffer): Buffer {
  const parts = [
    defs.encodeMethod(defs.BasicPublish, channel, fieldsAndProps),
    defs.encodeProperties(defs.BasicProperties, channel, content.length, fieldsAndProps),
  ];
  for (let o = 0; o < content.length; o += frameMax - 8)
    parts.push(frame.makeBodyFrame(channel, content.subarray(o, Math.min(content.length, o + frameMax - 8))));
  return Buffer.concat(parts);
}

function expectSameBytes(
  channel: number,
  frameMax: number,
  exchange: string,
  key: string,
  options: Fields,
  body: Buffer,
) {
  const fieldsAndProps = Args.publish(exchange, key, options);
  const ours = encodePublish(channel, frameMax, fieldsAndProps, fieldsAndProps, body);
  expect(ours.toString('hex')).toBe(amqplibBytes(channel, frameMax, fieldsAndProps, body).toString('hex'));
}

describe('publish frames', () => {
  it("encodes the relay's messages exactly as amqplib does", () => {
    for (let i = 0; i < 50; i++) {
      const row = {
        id: `0b6f1f0e-3a4f-4f8e-9d7a-${String(100000000000 + i)}`,
        aggregatetype: 'order',
        aggregateid: `order-${i}`,
        type: i % 2 ? 'OrderPlaced' : 'OrderConfirmed',
        payload: JSON.stringify({ orderId: `order-${i}`, items: 'x'.repeat(i * 37), note: 'é€😀' }),
        headers: JSON.stringify({
          correlationId: `order-${i}`,
          causationId: i % 3 ? null : 'e1',
          traceparent: '00-a-b-01',
        }),
        created_at: new Date(1_700_000_000_000 + i).toISOString(),
      };
      const m = toAmqpMessage(row, 'order', 'outbox');
      if (!m.ok) throw new Error(m.reason);
      expectSameBytes(1 + (i % 3), 131072, 'saga.events', m.routingKey, { ...m.options, userId: 'relay' }, m.content);
    }
  });

  it('encodes every property, and header values of every type, exactly as amqplib does', () => {
    const options = {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers: {
        s: 'text é',
        small: 7,
        negative: -200,
        int: 70_000,
        long: 2 ** 40,
        float: 1.5,
        t: true,
        f: false,
        nothing: null,
        skipped: undefined,
        list: [1, 'two', null, [3]],
        table: { a: { b: 'c' } },
        bytes: Buffer.from([0, 1, 2]),
        stamped: { '!': 'timestamp', value: 1_700_000_000 },
      },
      persistent: true,
      priority: 5,
      correlationId: 'corr',
      replyTo: 'reply.queue',
      expiration: 60000,
      messageId: 'm-1',
      timestamp: 1_700_000_000,
      type: 'OrderPlaced',
      userId: 'relay',
      appId: 'saga',
      clusterId: 'c',
      mandatory: true,
      CC: ['a.b', 'c.d'],
      BCC: 'e.f',
    };
    expectSameBytes(7, 131072, 'ex', 'rk', options, Buffer.from('{"a":1}'));
    expectSameBytes(7, 131072, 'ex', 'rk', {}, Buffer.from('{"a":1}'));
    expectSameBytes(65535, 131072, '', 'queue', { deliveryMode: 1 }, Buffer.from('x'));
  });

  it('encodes tables of strings, nulls and booleans exactly as amqplib does, whatever their text and length', () => {
    const texts = [
      '',
      'a',
      'x'.repeat(64),
      'x'.repeat(65),
      'é',
      'aé',
      'x'.repeat(63) + 'é',
      '€😀',
      'y'.repeat(5000),
      'lone \ud800 high',
      'lone \udc00 low',
      '\ud83d',
      '\u0000\u007f\u0080\uffff',
    ];
    for (const text of texts) {
      const headers = {
        [text.slice(0, 85) || 'k']: text,
        after: 'ok',
        no: null,
        yes: true,
        off: false,
        gone: undefined,
      };
      expectSameBytes(
        1,
        131072,
        'ex',
        'rk',
        { headers, messageId: text.slice(0, 80), type: text.slice(0, 60) },
        Buffer.from('{}'),
      );
    }
    // Keys amqplib still accepts past the fast path's bound, and a key that no short string holds.
    expectSameBytes(
      1,
      131072,
      'ex',
      'rk',
      { headers: { ['k'.repeat(86)]: 'v', ['é'.repeat(127)]: 'w' } },
      Buffer.from('{}'),
    );
    expect(() =>
      amqplibBytes(1, 131072, { routingKey: 'k', headers: { ['k'.repeat(256)]: 'v' } }, Buffer.from('x')),
    ).toThrow();
    expect(() =>
      encodePublish(1, 131072, { routingKey: 'k' }, { headers: { ['k'.repeat(256)]: 'v' } }, Buffer.from('x')),
    ).toThrow();
    // A table that ends up just under or over amqplib's 64 KiB scratch space.
    const near = [65_000, 65_520, 65_527, 65_528, 65_540].map((n) => 'z'.repeat(n));
    // Multi-byte text near the limit: a bound of fewer than 3 bytes per UTF-16 unit would pass what amqplib refuses.
    for (const n of [21_000, 21_839, 21_840, 21_850, 32_000])
      near.push('é'.repeat(n), '€'.repeat(n), '\ud800'.repeat(n));
    for (const text of near) {
      const headers = { big: text };
      let theirs: unknown;
      try {
        theirs = amqplibBytes(1, 131072, { routingKey: 'k', headers }, Buffer.from('x')).toString('hex');
      } catch (err) {
        theirs = (err as Error).constructor;
      }
      let ours: unknown;
      try {
        ours = encodePublish(1, 131072, { routingKey: 'k' }, { headers }, Buffer.from('x')).toString('hex');
      } catch (err) {
        ours = (err as Error).constructor;
      }
      expect(ours).toEqual(theirs);
    }
  });

  it('writes timestamps and body sizes past 32 bits as amqplib does, and refuses the timestamps it refuses', () => {
    for (const timestamp of [0, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, 2 ** 60])
      expectSameBytes(1, 131072, 'ex', 'rk', { timestamp }, Buffer.from('x'));
    for (const timestamp of [1.5, -1]) {
      const message = (f: () => unknown) => {
        try {
          f();
        } catch (err) {
          return (err as Error).message;
        }
        return 'no error';
      };
      const theirs = message(() => amqplibBytes(1, 131072, { routingKey: 'k', timestamp }, Buffer.from('x')));
      expect(theirs).not.toBe('no error');
      expect(message(() => encodePublish(1, 131072, { routingKey: 'k' }, { timestamp }, Buffer.from('x')))).toBe(
        theirs,
      );
    }
  });

  it('splits a body into frames of the negotiated size, and writes no body frame for an empty body', () => {
    const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    for (const frameMax of [4096, 4104, 9_999, 10_008, 131072])
      for (const size of [0, 1, frameMax - 9, frameMax - 8, frameMax - 7, 10_000])
        expectSameBytes(
          1,
          frameMax,
          'ex',
          'rk',
          { messageId: 'm', headers: {} },
          body.subarray(0, Math.min(size, 10_000)),
        );
  });

  it('leaves earlier messages intact while later ones are encoded', () => {
    const first = encodePublish(
      1,
      131072,
      { exchange: 'ex', routingKey: 'a' },
      { messageId: 'first' },
      Buffer.from('1'),
    );
    const copy = Buffer.from(first);
    for (let i = 0; i < 2_000; i++)
      encodePublish(1, 131072, { exchange: 'ex', routingKey: 'b' }, { messageId: `m${i}` }, Buffer.alloc(900, i % 256));
    expect(first.equals(copy)).toBe(true);
  });

  it('refuses what amqplib refuses, with the same kind of error', () => {
    const long = 'k'.repeat(256);
    for (const [fields, props] of [
      [{ exchange: 'ex', routingKey: long }, {}],
      [{ exchange: long, routingKey: 'k' }, {}],
      [{ exchange: 'ex', routingKey: 'k' }, { messageId: long }],
      [{ exchange: 'ex', routingKey: 'k' }, { type: 7 }],
      [{ exchange: 'ex', routingKey: 'k' }, { priority: Number.NaN }],
      [{ exchange: 'ex', routingKey: 'k' }, { headers: 'not a table' }],
      [{ exchange: null, routingKey: 'k' }, {}],
    ] as [Fields, Fields][]) {
      expect(() => amqplibBytes(1, 131072, { ...fields, ...props }, Buffer.from('x'))).toThrow(TypeError);
      expect(() => encodePublish(1, 131072, fields, props, Buffer.from('x'))).toThrow(TypeError);
    }
    expect(() =>
      encodePublish(1, 131072, { routingKey: 'k' }, { headers: { big: 'x'.repeat(70_000) } }, Buffer.from('x')),
    ).toThrow(RangeError);
  });
});
