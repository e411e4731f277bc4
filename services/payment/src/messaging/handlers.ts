import { randomUUID } from 'node:crypto';
import { batchHandler, type BatchHandler, type InboxRetention } from '@saga/common/messaging/batch-handler';
import type pg from 'pg';
import { decide, evolve } from '../domain/payment';
import { loadPayments, savePayments } from '../db/payment-repository';

/** Payment's part of the saga: on StockReserved, authorize (and debit) or decline the order's total; a batch per transaction. */
export function paymentHandler(
  pool: pg.Pool,
  consumer: string,
  limitCents: number,
  retention?: InboxRetention,
  newId: () => string = randomUUID,
): BatchHandler {
  return batchHandler(
    pool,
    consumer,
    ['StockReserved'],
    {
      load: (c, inbox, messages) => {
        const reserved = messages.flatMap((m) => (m.type === 'StockReserved' ? [m.data] : []));
        return loadPayments(c, inbox, [...new Set(reserved.map((d) => d.customerId))].sort(), [
          ...new Set(reserved.map((d) => d.orderId)),
        ]);
      },
      apply: (state, m) => {
        if (m.type !== 'StockReserved') throw new Error(`payment does not handle ${m.type}`);
        const { orderId, customerId, totalCents } = m.data;
        const events = decide(state, {
          type: 'AuthorizePayment',
          orderId,
          customerId,
          amountCents: totalCents,
          paymentId: newId(),
          limitCents,
        });
        m.log.info(
          { orderId, outcome: events[0]?.type ?? 'already paid', amountCents: totalCents },
          'payment decision',
        );
        return { state: events.reduce(evolve, state), events };
      },
      save: savePayments,
    },
    retention,
  );
}
