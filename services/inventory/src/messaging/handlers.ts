import {
  batchHandler,
  type BatchHandler,
  type InboxRetention,
  type Incoming,
} from '@saga/common/messaging/batch-handler';
import { InvalidMessageError } from '@saga/common/messaging/errors';
import type pg from 'pg';
import { decide, evolve, markCancelled, type InventoryCommand } from '../domain/stock';
import { loadInventory, saveInventory } from '../db/stock-repository';

const TYPES = ['OrderPlaced', 'OrderCancelled', 'OrderConfirmed'] as const;

/** What each event the inventory consumes asks of it. Pure; a type it does not consume is an invalid message. */
export function toCommand(m: Incoming): InventoryCommand {
  switch (m.type) {
    case 'OrderPlaced':
      return { type: 'ReserveStock', orderId: m.data.orderId, customerId: m.data.customerId, items: m.data.items };
    case 'OrderCancelled':
      return { type: 'ReleaseStock', orderId: m.data.orderId };
    case 'OrderConfirmed':
      return { type: 'SellStock', orderId: m.data.orderId };
    default:
      throw new InvalidMessageError(`inventory does not handle ${m.type}`);
  }
}

/**
 * Inventory's part of the saga: reserve on OrderPlaced (all lines or none), release on OrderCancelled
 * (compensation), sell on OrderConfirmed; a batch of them in one transaction with its inbox and outbox rows.
 */
export function inventoryHandler(pool: pg.Pool, consumer: string, retention?: InboxRetention): BatchHandler {
  return batchHandler(
    pool,
    consumer,
    TYPES,
    {
      load: (c, inbox, messages) => {
        const commands = messages.map(toCommand);
        const skus = commands.flatMap((cmd) => (cmd.type === 'ReserveStock' ? cmd.items.map((i) => i.sku) : []));
        return loadInventory(c, inbox, [...new Set(commands.map((cmd) => cmd.orderId))], [...new Set(skus)]);
      },
      apply: (state, m) => {
        const command = toCommand(m);
        const events = decide(state, command);
        m.log.info({ orderId: m.data.orderId, outcome: events[0]?.type ?? 'nothing to do' }, 'inventory decision');
        const after = events.reduce(evolve, state);
        return { state: command.type === 'ReleaseStock' ? markCancelled(after, command.orderId) : after, events };
      },
      save: saveInventory,
    },
    retention,
  );
}
