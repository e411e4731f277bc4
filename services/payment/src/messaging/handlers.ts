import { randomUUID } from 'node:crypto';
import {
  batchHandler,
  type BatchHandler,
  type InboxRetention,
  type Incoming,
} from '@saga/common/messaging/batch-handler';
import type pg from 'pg';
import { InvalidMessageError } from '@saga/common/messaging/errors';
import { decide, evolve, type AuthorizePayment } from '../domain/payment';
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
        const command = toCommand(m, newId(), limitCents);
        const events = decide(state, command);
        m.log.info(
          { orderId: command.orderId, outcome: events[0]?.type ?? 'already paid', amountCents: command.amountCents },
          'payment decision',
        );
        return { state: events.reduce(evolve, state), events };
      },
      save: savePayments,
    },
    retention,
  );
}

/**
 * What each event the payment service consumes asks of it. Pure: the new payment's id and the limit are passed in;
 * a type it does not consume is an invalid message.
 */
export function toCommand(m: Incoming, paymentId: string, limitCents: number): AuthorizePayment {
  if (m.type !== 'StockReserved') throw new InvalidMessageError(`payment does not handle ${m.type}`);
  const { orderId, customerId, totalCents } = m.data;
  return { type: 'AuthorizePayment', orderId, customerId, amountCents: totalCents, paymentId, limitCents };
}
