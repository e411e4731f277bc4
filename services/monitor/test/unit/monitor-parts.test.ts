import type { ConsumeMessage } from 'amqplib';
import type { Incoming } from '@saga/common/messaging/batch-handler';
import { createCatchUp } from '../../src/catch-up';
import type { EventRow } from '../../src/db/saga-repository';
import { toDeadLetterRow } from '../../src/messaging/dead-letters';
import { MAX_HEADER_TEXT, newlyFinished, OCCURRED_AT_BOUNDS, toEventRow } from '../../src/messaging/handlers';

const t0 = Date.parse('2026-11-27T10:00:00.000Z');
const row = (messageId: string, type: EventRow['type'], atMs: number, causationId: string | null = null): EventRow => ({
  messageId,
  orderId: 'o1',
  type,
  service: 'order',
  causationId,
  traceparent: null,
  reason: null,
  at: new Date(t0 + atMs),
});

describe('what the monitor keeps of an event', () => {
  const incoming = (headers: Record<string, unknown>) =>
    ({
      type: 'OrderCancelled',
      data: { orderId: 'o1', reason: 'OUT_OF_STOCK', detail: null },
      envelope: {
        id: 'm1',
        aggregateType: 'order',
        aggregateId: 'o1',
        type: 'OrderCancelled',
        payload: { version: 1, data: {} },
        headers: { correlationId: 'o1', causationId: 'c1', ...headers },
      },
    }) as unknown as Incoming;

  it("takes the producer's occurredAt, the reason and the causation", () => {
    const r = toEventRow(
      incoming({ occurredAt: '2026-11-27T10:00:00.123Z', traceparent: '00-abc-def-01' }),
      new Date(t0 + 9999),
    );
    expect(r).toEqual({
      messageId: 'm1',
      orderId: 'o1',
      type: 'OrderCancelled',
      service: 'order',
      causationId: 'c1',
      traceparent: '00-abc-def-01',
      reason: 'OUT_OF_STOCK',
      at: new Date(t0 + 123),
    });
  });

  it('falls back to the receive time when the producer gives no usable time', () => {
    expect(toEventRow(incoming({}), new Date(t0 + 5)).at).toEqual(new Date(t0 + 5));
    expect(toEventRow(incoming({ occurredAt: 'yesterday' }), new Date(t0 + 6)).at).toEqual(new Date(t0 + 6));
  });

  it('does not believe an occurredAt far from the receive time, so one bad clock cannot make every saga stuck', () => {
    const received = new Date(t0);
    const at = (occurredAt: string) => toEventRow(incoming({ occurredAt }), received).at;
    expect(at('2999-01-01T00:00:00.000Z')).toEqual(received);
    expect(at('1970-01-01T00:00:00.000Z')).toEqual(received);
    expect(at(new Date(t0 + OCCURRED_AT_BOUNDS.aheadMs + 1).toISOString())).toEqual(received);
    expect(at(new Date(t0 + OCCURRED_AT_BOUNDS.aheadMs).toISOString())).toEqual(
      new Date(t0 + OCCURRED_AT_BOUNDS.aheadMs),
    );
    expect(at(new Date(t0 - 3600_000).toISOString())).toEqual(new Date(t0 - 3600_000));
  });

  it('caps the header text it stores', () => {
    const r = toEventRow(
      incoming({ causationId: 'c'.repeat(100_000), traceparent: 't'.repeat(100_000) }),
      new Date(t0),
    );
    expect(r.causationId).toHaveLength(MAX_HEADER_TEXT);
    expect(r.traceparent).toHaveLength(MAX_HEADER_TEXT);
  });
});

describe('which sagas finished in a batch', () => {
  it('observes a saga once, when both its start and its final event are known, in either arrival order', () => {
    const placed = row('p', 'OrderPlaced', 0);
    const confirmed = row('c', 'OrderConfirmed', 40, 'x');
    // The final event first: no duration yet.
    expect(newlyFinished(new Map([['o1', [confirmed]]]), new Set(['c'])).finished).toEqual([]);
    // Then OrderPlaced: now it is known, and observed.
    expect(newlyFinished(new Map([['o1', [confirmed, placed]]]), new Set(['p'])).finished).toEqual([
      { orderId: 'o1', outcome: 'CONFIRMED', durationSeconds: 0.04 },
    ]);
    // A later follow-up event does not observe it again.
    const committed = row('s', 'StockCommitted', 50, 'c');
    expect(newlyFinished(new Map([['o1', [confirmed, placed, committed]]]), new Set(['s'])).finished).toEqual([]);
  });
});

describe('a dead-letter report', () => {
  const msg = (properties: Partial<ConsumeMessage['properties']>, routingKey = 'payment.events.dlq') =>
    ({ properties: { headers: {}, ...properties }, fields: { routingKey } }) as unknown as ConsumeMessage;

  it('names the message, the saga, the queue and why, keyed by when it was parked', () => {
    const r = toDeadLetterRow(
      msg({
        messageId: 'm9',
        correlationId: 'o7',
        type: 'StockReserved',
        headers: {
          'x-dead-lettered-by': 'payment.events',
          'x-dead-letter-reason': 'invalid',
          'x-dead-letter-error': 'data.totalCents: expected number',
          'x-dead-lettered-at': '2026-11-27T10:00:01.000Z',
        },
      }),
      new Date(t0),
    );
    expect(r).toEqual({
      key: 'm9@payment.events@2026-11-27T10:00:01.000Z',
      messageId: 'm9',
      queue: 'payment.events.dlq',
      orderId: 'o7',
      type: 'StockReserved',
      reason: 'invalid',
      error: 'data.totalCents: expected number',
      at: new Date(t0 + 1000),
    });
  });

  it("reads a Debezium-shaped message's id, type and order id from its headers (JSON text, jsonb inside as JSON text)", () => {
    const r = toDeadLetterRow(
      msg({
        headers: {
          id: 'd1',
          type: 'OrderPlaced',
          'x-aggregate-id': 'o8',
          'x-outbox-headers': JSON.stringify(JSON.stringify({ correlationId: 'o8' })),
        },
      }),
      new Date(t0),
    );
    expect(r).toMatchObject({ messageId: 'd1', type: 'OrderPlaced', orderId: 'o8', queue: 'payment.events.dlq' });
  });
});

describe('the catch-up clock', () => {
  it('is the present when the queue is empty, else the newest event consumed', () => {
    let now = new Date(t0 + 60_000);
    const c = createCatchUp(() => now);
    c.consumed(new Date(t0 + 10));
    c.consumed(new Date(t0 + 5));
    expect(c.asOf()).toEqual(new Date(t0 + 10)); // behind until the broker says otherwise
    c.queueDepth(0);
    expect(c.asOf()).toBe(now);
    c.queueDepth(1200);
    expect(c.behind()).toBe(true);
    expect(c.asOf()).toEqual(new Date(t0 + 10));
    c.queueDepth(undefined);
    now = new Date(t0 + 120_000);
    expect(c.asOf()).toEqual(new Date(t0 + 10));
  });
});
