import { onPaymentAuthorized, onPaymentDeclined, onStockRejected, onStockReserved, placeOrder, type Order } from '../../src/domain/order';

const id = '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11';
const placed = () => placeOrder({ orderId: id, customerId: 'c1', items: [{ sku: 'a', quantity: 2 }] }).order;
const pay = { orderId: id, customerId: 'c1', paymentId: '0b6a9c1e-1f1d-4f55-8f0e-0e3f4b7e2d11', amountCents: 500 };

describe('order state', () => {
  it('is placed PENDING and announces OrderPlaced', () => {
    const t = placeOrder({ orderId: id, customerId: 'c1', items: [{ sku: 'a', quantity: 2 }] });
    expect(t.order).toMatchObject({ status: 'PENDING', reason: null, totalCents: null, items: [{ sku: 'a', quantity: 2, priceCents: null }] });
    expect(t.events).toEqual([{ type: 'OrderPlaced', data: { orderId: id, customerId: 'c1', items: [{ sku: 'a', quantity: 2 }] } }]);
  });

  it('records prices and total when stock is reserved, publishing nothing', () => {
    const t = onStockReserved(placed(), { orderId: id, customerId: 'c1', lines: [{ sku: 'a', quantity: 2, priceCents: 250 }], totalCents: 500 });
    expect(t.order).toMatchObject({ status: 'PENDING', totalCents: 500, items: [{ sku: 'a', priceCents: 250 }] });
    expect(t.events).toEqual([]);
  });

  it('is confirmed by an authorized payment', () => {
    const t = onPaymentAuthorized(placed(), pay);
    expect(t.order.status).toBe('CONFIRMED');
    expect(t.history.map((h) => h.type)).toEqual(['PaymentAuthorized', 'OrderConfirmed']);
    expect(t.events).toEqual([{ type: 'OrderConfirmed', data: { orderId: id, customerId: 'c1', totalCents: 500 } }]);
  });

  it('is cancelled with the stock reason when stock is rejected', () => {
    const t = onStockRejected(placed(), { orderId: id, reason: 'OUT_OF_STOCK', sku: 'a' });
    expect(t.order).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK' });
    expect(t.events).toEqual([{ type: 'OrderCancelled', data: { orderId: id, reason: 'OUT_OF_STOCK', detail: null } }]);
  });

  it.each([
    ['INSUFFICIENT_FUNDS', 'PAYMENT_DECLINED'],
    ['LIMIT_EXCEEDED', 'PAYMENT_DECLINED'],
    ['UNKNOWN_CUSTOMER', 'UNKNOWN_CUSTOMER'],
  ] as const)('is cancelled when payment is declined for %s, as %s, keeping the payment reason', (declined, reason) => {
    const t = onPaymentDeclined(placed(), { ...pay, reason: declined });
    expect(t.order).toMatchObject({ status: 'CANCELLED', reason });
    expect(t.history).toEqual([{ type: 'PaymentDeclined', reason: declined }, { type: 'OrderCancelled', reason }]);
    expect(t.events).toEqual([{ type: 'OrderCancelled', data: { orderId: id, reason, detail: declined } }]);
  });

  it('does not leave a final state', () => {
    const confirmed: Order = { ...placed(), status: 'CONFIRMED' };
    expect(onPaymentDeclined(confirmed, { ...pay, reason: 'INSUFFICIENT_FUNDS' })).toMatchObject({ order: confirmed, events: [] });
    const cancelled: Order = { ...placed(), status: 'CANCELLED', reason: 'OUT_OF_STOCK' };
    expect(onPaymentAuthorized(cancelled, pay)).toMatchObject({ order: cancelled, events: [] });
  });
});
