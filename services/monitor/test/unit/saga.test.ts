import { causalOrder, isStuck, nextStep, summarize, timeline, type SagaEvent } from '../../src/domain/saga';

const t0 = Date.parse('2026-11-27T10:00:00.000Z');
let n = 0;
function ev(
  type: SagaEvent['type'],
  atMs: number,
  causationId: string | null,
  extra: Partial<SagaEvent> = {},
): SagaEvent {
  n++;
  return {
    messageId: `m${n}`,
    type,
    service: 'order',
    causationId,
    traceparent: null,
    at: new Date(t0 + atMs),
    reason: null,
    ...extra,
  };
}

/** A whole confirmed saga, each event caused by the one before. */
function confirmedSaga() {
  const placed = ev('OrderPlaced', 0, null, { messageId: 'placed' });
  const reserved = ev('StockReserved', 12, 'placed', { messageId: 'reserved', service: 'inventory' });
  const paid = ev('PaymentAuthorized', 20, 'reserved', { messageId: 'paid', service: 'payment' });
  const confirmed = ev('OrderConfirmed', 31, 'paid', { messageId: 'confirmed' });
  const committed = ev('StockCommitted', 40, 'confirmed', { messageId: 'committed', service: 'inventory' });
  return [placed, reserved, paid, confirmed, committed];
}

describe('saga summary', () => {
  it('is confirmed with its duration from OrderPlaced to OrderConfirmed, whatever order the events arrived in', () => {
    const events = confirmedSaga();
    for (const arrival of [
      events,
      [...events].reverse(),
      [events[3]!, events[0]!, events[4]!, events[1]!, events[2]!],
    ]) {
      const s = summarize(arrival);
      expect(s.status).toBe('CONFIRMED');
      expect(s.startedAt!.getTime()).toBe(t0);
      expect(s.finishedAt!.getTime()).toBe(t0 + 31);
      expect(s.waitingFor).toBeUndefined();
      expect(s.lastEventType).toBe('StockCommitted');
    }
  });

  it('is cancelled with the reason OrderCancelled carries', () => {
    const s = summarize([
      ev('OrderPlaced', 0, null, { messageId: 'p' }),
      ev('StockRejected', 5, 'p', { messageId: 'r', reason: 'OUT_OF_STOCK' }),
      ev('OrderCancelled', 9, 'r', { reason: 'OUT_OF_STOCK' }),
    ]);
    expect(s).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK', settled: true });
  });

  it('says which step a saga waits for, up to inventory following up the final event', () => {
    expect(nextStep([ev('OrderPlaced', 0, null)])).toMatchObject({
      service: 'inventory',
      events: ['StockReserved', 'StockRejected'],
    });
    expect(nextStep([ev('OrderPlaced', 0, null), ev('StockReserved', 1, null)])).toMatchObject({ service: 'payment' });
    expect(nextStep([ev('StockReserved', 1, null), ev('PaymentDeclined', 2, null)])).toMatchObject({
      service: 'order',
      events: ['OrderCancelled'],
    });
    expect(nextStep([ev('PaymentAuthorized', 2, null)])).toMatchObject({
      service: 'order',
      events: ['OrderConfirmed'],
    });
    // Final but not settled: the compensation (or the sale) is still due, and a saga can be stuck there.
    expect(nextStep([ev('StockReserved', 1, null), ev('OrderConfirmed', 3, null)])).toMatchObject({
      service: 'inventory',
      events: ['StockCommitted'],
    });
    expect(
      nextStep([ev('StockReserved', 1, null), ev('PaymentDeclined', 2, null), ev('OrderCancelled', 3, null)]),
    ).toMatchObject({
      service: 'inventory',
      events: ['StockReleased'],
    });
    // Cancelled for lack of stock: nothing was reserved, nothing to compensate.
    expect(
      nextStep([ev('OrderPlaced', 0, null), ev('StockRejected', 1, null), ev('OrderCancelled', 2, null)]),
    ).toBeUndefined();
    // A later step arrived before OrderPlaced (another relay stream): the saga has no start time yet.
    const early = summarize([ev('StockReserved', 3, null)]);
    expect(early.startedAt).toBeNull();
    expect(early).toMatchObject({ status: 'PENDING', settled: false });
  });

  it("takes inventory's follow-up for the final outcome it implies when the order's event has not arrived", () => {
    expect(summarize([ev('StockCommitted', 5, null)])).toMatchObject({
      status: 'CONFIRMED',
      settled: true,
      finishedAt: null,
    });
    expect(summarize([ev('StockReleased', 5, null)])).toMatchObject({ status: 'CANCELLED', settled: true });
    const unsettled = summarize([
      ev('OrderPlaced', 0, null),
      ev('StockReserved', 1, null),
      ev('OrderConfirmed', 2, null),
    ]);
    expect(unsettled).toMatchObject({ status: 'CONFIRMED', settled: false, waitingFor: { service: 'inventory' } });
  });

  it('is stuck only when unsettled and quiet for longer than the threshold', () => {
    const s = summarize([ev('OrderPlaced', 0, null)]);
    expect(isStuck(s, new Date(t0 + 30_000), 30_000)).toBe(false);
    expect(isStuck(s, new Date(t0 + 30_001), 30_000)).toBe(true);
    expect(isStuck(summarize(confirmedSaga()), new Date(t0 + 3_600_000), 30_000)).toBe(false);
    const uncompensated = summarize([
      ev('StockReserved', 0, null),
      ev('PaymentDeclined', 1, null),
      ev('OrderCancelled', 2, null),
    ]);
    expect(isStuck(uncompensated, new Date(t0 + 60_000), 30_000)).toBe(true);
  });

  it('refuses to summarize nothing', () => {
    expect(() => summarize([])).toThrow(/at least one event/);
  });
});

describe('saga timeline', () => {
  it('orders events by causation even when a producer clock runs behind, with each hop from its cause', () => {
    const [placed, reserved, paid, confirmed, committed] = confirmedSaga();
    // Payment's clock is 15 ms behind: by time it would come before StockReserved.
    const skewed = { ...paid!, at: new Date(t0 + 5) };
    const order = causalOrder([committed!, skewed, confirmed!, reserved!, placed!]).map((e) => e.messageId);
    expect(order).toEqual(['placed', 'reserved', 'paid', 'confirmed', 'committed']);
    const tl = timeline([placed!, reserved!, paid!, confirmed!, committed!]);
    expect(tl.map((e) => e.hopMs)).toEqual([null, 12, 8, 11, 9]);
    expect(tl.map((e) => e.offsetMs)).toEqual([0, 12, 20, 31, 40]);
  });

  it('lists every event once even with causation it cannot resolve', () => {
    const events = [
      ev('OrderPlaced', 0, 'not-here'),
      ev('StockReserved', 1, 'also-missing'),
      ev('OrderConfirmed', 2, null),
    ];
    expect(causalOrder(events)).toHaveLength(3);
    expect(timeline(events).every((e) => e.hopMs === null)).toBe(true);
  });
});
