/** What a parked (retry or dead-letter) copy of a message carries: an allowlist, each value encodable. */
import type { ConsumeMessage } from 'amqplib';
import { attemptsSpent, carriedHeaders, deadLetterCopy, retryCopy } from '../../src/messaging/parking';

const message = (headers: Record<string, unknown>, properties: Record<string, unknown> = {}) =>
  ({
    content: Buffer.from('{}'),
    fields: { routingKey: 'order.OrderPlaced', exchange: 'saga.events' },
    properties: { messageId: 'm1', correlationId: 'o1', type: 'OrderPlaced', headers, ...properties },
  }) as unknown as ConsumeMessage;

describe('parked copies', () => {
  it('carry the envelope headers and drop everything else', () => {
    const h = carriedHeaders({
      correlationId: 'o1',
      causationId: 'c1',
      traceparent: '00-abc-def-01',
      'x-aggregate-id': 'o1',
      CC: 'not-an-array',
      BCC: ['elsewhere'],
      'x-death': [{ count: 1 }],
      'x-anything': 'from a sender',
    });
    expect(h).toEqual({ correlationId: 'o1', causationId: 'c1', traceparent: '00-abc-def-01', 'x-aggregate-id': 'o1' });
  });

  it('drop carried headers whose values cannot be encoded again', () => {
    const h = carriedHeaders({ correlationId: Number.NaN, causationId: Infinity, traceparent: { a: 1 }, id: 2 ** 64 });
    expect(h).toEqual({});
  });

  it('never copy broker-routing headers or a sender expiration into a retry', () => {
    const o = retryCopy(message({ CC: 'x', 'x-attempt': 2 }, { expiration: '1', priority: 9 }), 3, 500, 'boom');
    expect(o.headers).toEqual({ 'x-attempt': 3, 'x-last-error': 'boom' });
    expect(o.expiration).toBe('500');
    expect(o).not.toHaveProperty('priority');
    expect(o).toMatchObject({ messageId: 'm1', correlationId: 'o1', type: 'OrderPlaced', persistent: true });
  });

  it('a bare dead-letter copy keeps only the consumer headers and the message id', () => {
    const d = { reason: 'unencodable', error: 'x', by: 'inventory.events', at: new Date(0), attempt: 1 };
    const o = deadLetterCopy(message({ correlationId: 'o1' }), d, true);
    expect(o.messageId).toBe('m1');
    expect(o.correlationId).toBeUndefined();
    expect(Object.keys(o.headers ?? {}).every((k) => k.startsWith('x-'))).toBe(true);
    expect(o.headers).toMatchObject({
      'x-dead-letter-reason': 'unencodable',
      'x-dead-lettered-by': 'inventory.events',
    });
  });

  it.each([
    [undefined, 0],
    [3, 3],
    [0, 0],
    [-4, 0],
    [2.5, 0],
    [Number.NaN, 0],
    [Infinity, 0],
    ['7', 0],
    [{ '!': 'int', value: 9 }, 0],
    [10 ** 12, 1_000_000],
  ])('reads x-attempt %p as %p attempts spent', (value, spent) => {
    expect(attemptsSpent(value === undefined ? {} : { 'x-attempt': value })).toBe(spent);
  });
});
