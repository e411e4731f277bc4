import { applyOnce, type Handlers } from '@saga/common/consumer';
import type { EventData, EventType } from '@saga/common/contracts';
import { InvalidMessageError } from '@saga/common/errors';
import type { Tx } from '@saga/common/outbox';
import { onPaymentAuthorized, onPaymentDeclined, onStockRejected, onStockReserved, type Order, type Transition } from '../domain/order';
import { lockOrder, saveTransition } from '../db/order-repository';

type Db = { transaction: <R>(fn: (tx: Tx) => Promise<R>) => Promise<R> };

/** Order's part of the saga: follow stock and payment outcomes to CONFIRMED or CANCELLED. */
export function orderHandlers(db: Db): Handlers {
  const on = <T extends EventType>(apply: (order: Order, data: EventData<T>) => Transition) =>
    applyOnce<T>(db, 'order.events', async (tx, data, _env, log) => {
      const orderId = (data as { orderId: string }).orderId;
      const order = await lockOrder(tx, orderId);
      // The order row commits before OrderPlaced can exist, so an event for an unknown order is not ours.
      if (!order) throw new InvalidMessageError(`order ${orderId} is unknown`);
      const t = apply(order, data);
      await saveTransition(tx, order, t);
      if (t.order.status !== order.status) log.info({ orderId, status: t.order.status, reason: t.order.reason }, 'order state changed');
      return t.events;
    });
  return {
    StockReserved: on<'StockReserved'>(onStockReserved),
    StockRejected: on<'StockRejected'>(onStockRejected),
    PaymentAuthorized: on<'PaymentAuthorized'>(onPaymentAuthorized),
    PaymentDeclined: on<'PaymentDeclined'>(onPaymentDeclined),
  };
}
