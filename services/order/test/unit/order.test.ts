import { specFor } from '@saga/common/domain/decider';
import { historyEntry, orderDecider, published, type OrderEvent, type OrderFact } from '../../src/domain/order';

const id = '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11';
const spec = specFor(orderDecider);
const placedEvent: OrderEvent = {
  type: 'OrderPlaced',
  data: { orderId: id, customerId: 'c1', items: [{ sku: 'a', quantity: 2 }] },
};
const pay = { orderId: id, customerId: 'c1', paymentId: '0b6a9c1e-1f1d-4f55-8f0e-0e3f4b7e2d11', amountCents: 500 };
const record = (fact: OrderFact) => ({ type: 'Record', fact }) as const;
const placed = () => spec.given(undefined, placedEvent);

describe('order state', () => {
  it('is placed PENDING and announces OrderPlaced', () => {
    const { events, state } = spec
      .given(undefined)
      .when({ type: 'PlaceOrder', data: { orderId: id, customerId: 'c1', items: [{ sku: 'a', quantity: 2 }] } });
    expect(events).toEqual([placedEvent]);
    expect(state).toMatchObject({
      status: 'PENDING',
      reason: null,
      totalCents: null,
      items: [{ sku: 'a', quantity: 2, priceCents: null }],
    });
  });

  it('refuses an order without items', () => {
    expect(() =>
      spec.given(undefined).when({ type: 'PlaceOrder', data: { orderId: id, customerId: 'c1', items: [] } }),
    ).toThrow('at least one item');
  });

  it('records prices and total when stock is reserved, publishing nothing', () => {
    const fact: OrderFact = {
      type: 'StockReserved',
      data: { orderId: id, customerId: 'c1', lines: [{ sku: 'a', quantity: 2, priceCents: 250 }], totalCents: 500 },
    };
    const { events, state } = placed().when(record(fact));
    expect(state).toMatchObject({ status: 'PENDING', totalCents: 500, items: [{ sku: 'a', priceCents: 250 }] });
    expect(events).toEqual([fact]);
    expect(published(events)).toEqual([]);
  });

  it('is confirmed by an authorized payment', () => {
    const { events, state } = placed().when(record({ type: 'PaymentAuthorized', data: pay }));
    expect(state!.status).toBe('CONFIRMED');
    expect(events.map((e) => historyEntry(e).type)).toEqual(['PaymentAuthorized', 'OrderConfirmed']);
    expect(published(events)).toEqual([
      { type: 'OrderConfirmed', data: { orderId: id, customerId: 'c1', totalCents: 500 } },
    ]);
  });

  it('is cancelled with the stock reason when stock is rejected', () => {
    const { events, state } = placed().when(
      record({ type: 'StockRejected', data: { orderId: id, reason: 'OUT_OF_STOCK', sku: 'a' } }),
    );
    expect(state).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK' });
    expect(published(events)).toEqual([
      { type: 'OrderCancelled', data: { orderId: id, reason: 'OUT_OF_STOCK', detail: null } },
    ]);
  });

  it.each([
    ['INSUFFICIENT_FUNDS', 'PAYMENT_DECLINED'],
    ['LIMIT_EXCEEDED', 'PAYMENT_DECLINED'],
    ['UNKNOWN_CUSTOMER', 'UNKNOWN_CUSTOMER'],
  ] as const)('is cancelled when payment is declined for %s, as %s, keeping the payment reason', (declined, reason) => {
    const { events, state } = placed().when(record({ type: 'PaymentDeclined', data: { ...pay, reason: declined } }));
    expect(state).toMatchObject({ status: 'CANCELLED', reason });
    expect(events.map(historyEntry)).toEqual([
      { type: 'PaymentDeclined', reason: declined },
      { type: 'OrderCancelled', reason },
    ]);
    expect(published(events)).toEqual([{ type: 'OrderCancelled', data: { orderId: id, reason, detail: declined } }]);
  });

  it('does not leave a final state, but still records what it hears', () => {
    const confirmed = placed().when(record({ type: 'PaymentAuthorized', data: pay })).state;
    const late = spec
      .given(confirmed)
      .when(record({ type: 'PaymentDeclined', data: { ...pay, reason: 'INSUFFICIENT_FUNDS' } }));
    expect(late.state).toEqual(confirmed);
    expect(late.events.map((e) => e.type)).toEqual(['PaymentDeclined']);
    const cancelled = placed().when(
      record({ type: 'StockRejected', data: { orderId: id, reason: 'OUT_OF_STOCK', sku: 'a' } }),
    ).state;
    expect(published(spec.given(cancelled).when(record({ type: 'PaymentAuthorized', data: pay })).events)).toEqual([]);
  });

  it('refuses a fact about an order it does not have', () => {
    expect(() => spec.given(undefined).when(record({ type: 'PaymentAuthorized', data: pay }))).toThrow('unknown');
  });
});
