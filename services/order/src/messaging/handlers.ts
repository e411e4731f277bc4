import {
  batchHandler,
  type BatchHandler,
  type InboxRetention,
  type Incoming,
} from '@saga/common/messaging/batch-handler';
import { InvalidMessageError } from '@saga/common/messaging/errors';
import type pg from 'pg';
import {
  decide,
  evolve,
  historyEntry,
  published,
  type Order,
  type OrderCommand,
  type OrderFact,
} from '../domain/order';
import { loadOrders, saveOrders, type OrderBatch } from '../db/order-repository';

const TYPES = ['StockReserved', 'StockRejected', 'PaymentAuthorized', 'PaymentDeclined'] as const;

/** Order's part of the saga: follow stock and payment outcomes to CONFIRMED or CANCELLED, a batch per transaction. */
export function orderHandler(pool: pg.Pool, consumer: string, retention?: InboxRetention): BatchHandler {
  return batchHandler<OrderBatch>(
    pool,
    consumer,
    TYPES,
    {
      load: async (c, inbox, messages) => {
        const { claimed, orders } = await loadOrders(c, inbox, [...new Set(messages.map((m) => m.data.orderId))]);
        return { claimed, state: { orders, history: [] } };
      },
      apply: (state, m) => {
        const command = toCommand(m);
        const order = state.orders.get(command.fact.data.orderId);
        // The order row commits before OrderPlaced can exist, so an event for an unknown order is not ours.
        if (!order) throw new InvalidMessageError(`order ${command.fact.data.orderId} is unknown`);
        const events = decide(order, command);
        const after = events.reduce<Order | undefined>(evolve, order)!;
        if (after.status !== order.status)
          m.log.info({ orderId: order.id, status: after.status, reason: after.reason }, 'order state changed');
        return {
          state: {
            orders: new Map(state.orders).set(order.id, after),
            history: [...state.history, ...events.map((e) => ({ ...historyEntry(e), orderId: order.id }))],
          },
          events: published(events),
        };
      },
      save: saveOrders,
    },
    retention,
  );
}

/** What each event the order service consumes asks of it. Pure; a type it does not consume is an invalid message. */
export function toCommand(m: Incoming): Extract<OrderCommand, { type: 'Record' }> {
  if (!(TYPES as readonly string[]).includes(m.type)) throw new InvalidMessageError(`order does not handle ${m.type}`);
  return { type: 'Record', fact: { type: m.type, data: m.data } as OrderFact };
}
