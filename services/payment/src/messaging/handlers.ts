import { randomUUID } from 'node:crypto';
import { applyOnce, type Handlers } from '@saga/common/consumer';
import type { Tx } from '@saga/common/outbox';
import { applyPayment, decidePayment } from '../domain/payment';
import { hasPayment, lockAccount, recordPayment, saveBalance } from '../db/payment-repository';

type Db = { transaction: <R>(fn: (tx: Tx) => Promise<R>) => Promise<R> };

/** Payment's part of the saga: on StockReserved, authorize (and debit) or decline the order's total. */
export function paymentHandlers(db: Db, limitCents: number, newId: () => string = randomUUID): Handlers {
  return {
    StockReserved: applyOnce<'StockReserved'>(db, 'payment.events', async (tx, data, _env, log) => {
      if (await hasPayment(tx, data.orderId)) return []; // one payment attempt per order
      const account = await lockAccount(tx, data.customerId);
      const decision = decidePayment(account, { orderId: data.orderId, customerId: data.customerId, amountCents: data.totalCents, paymentId: newId() }, limitCents);
      if (account && decision.type === 'PaymentAuthorized') await saveBalance(tx, applyPayment(account, decision));
      await recordPayment(tx, decision);
      log.info({ orderId: data.orderId, outcome: decision.type, amountCents: data.totalCents }, 'payment decision');
      return [decision];
    }),
  };
}
