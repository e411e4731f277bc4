/**
 * Every service turns an incoming event into a command the same way: a pure `toCommand` beside its handler, and a
 * type it does not consume is an invalid message (dead-lettered at once, never retried).
 */
import type { Incoming } from '@saga/common/messaging/batch-handler';
import { InvalidMessageError } from '@saga/common/messaging/errors';
import { toCommand as inventoryCommand } from '../../services/inventory/src/messaging/handlers';
import { toCommand as orderCommand } from '../../services/order/src/messaging/handlers';
import { toCommand as paymentCommand } from '../../services/payment/src/messaging/handlers';

const incoming = (type: string, data: Record<string, unknown>) => ({ type, data }) as unknown as Incoming;
const orderId = '0b9f6f4e-3d0c-4a53-9c31-6d0c1b2b8f11';

describe('message to command', () => {
  it('inventory: an order placed asks to reserve its lines, a cancel to release, a confirmation to sell', () => {
    const items = [{ sku: 'sku-1', quantity: 2 }];
    expect(inventoryCommand(incoming('OrderPlaced', { orderId, customerId: 'c1', items }))).toEqual({
      type: 'ReserveStock',
      orderId,
      customerId: 'c1',
      items,
    });
    expect(inventoryCommand(incoming('OrderCancelled', { orderId }))).toEqual({ type: 'ReleaseStock', orderId });
    expect(inventoryCommand(incoming('OrderConfirmed', { orderId }))).toEqual({ type: 'SellStock', orderId });
  });

  it('order: each stock and payment outcome is a fact to record', () => {
    const data = { orderId, reason: 'OUT_OF_STOCK' };
    expect(orderCommand(incoming('StockRejected', data))).toEqual({
      type: 'Record',
      fact: { type: 'StockRejected', data },
    });
  });

  it('payment: a reservation asks to authorize its total, with the id and limit given', () => {
    expect(
      paymentCommand(incoming('StockReserved', { orderId, customerId: 'c1', totalCents: 1200 }), 'p1', 5000),
    ).toEqual({
      type: 'AuthorizePayment',
      orderId,
      customerId: 'c1',
      amountCents: 1200,
      paymentId: 'p1',
      limitCents: 5000,
    });
  });

  it('each refuses a type it does not consume as an invalid message', () => {
    const other = incoming('PaymentAuthorized', { orderId });
    expect(() => inventoryCommand(other)).toThrow(InvalidMessageError);
    expect(() => orderCommand(incoming('OrderPlaced', { orderId }))).toThrow(InvalidMessageError);
    expect(() => paymentCommand(other, 'p1', 5000)).toThrow(InvalidMessageError);
  });
});
