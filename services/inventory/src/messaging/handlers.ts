import { applyOnce, type Handlers } from '@saga/common/consumer';
import type { DomainEvent } from '@saga/common/contracts';
import type { Tx } from '@saga/common/outbox';
import { applyRelease, applyReservation, applySale, decideReservation, mergeLines, openLines } from '../domain/stock';
import { insertReservations, lockProducts, lockReservations, moveStock, settleReservations } from '../db/stock-repository';

type Db = { transaction: <R>(fn: (tx: Tx) => Promise<R>) => Promise<R> };
const CONSUMER = 'inventory.events';

/**
 * Inventory's part of the saga. Reserve on OrderPlaced (all lines or none), release on OrderCancelled
 * (compensation), turn the reservation into a sale on OrderConfirmed. Each runs in one transaction with its inbox
 * row and outbox rows (applyOnce).
 */
export function inventoryHandlers(db: Db): Handlers {
  return {
    OrderPlaced: applyOnce<'OrderPlaced'>(db, CONSUMER, async (tx, data, _env, log) => {
      if ((await lockReservations(tx, data.orderId)).length > 0) return []; // already reserved for this order
      const lines = mergeLines(data.items);
      const stock = await lockProducts(tx, lines.map((l) => l.sku));
      const decision = decideReservation(stock, data);
      if (decision.type === 'StockReserved') {
        for (const l of decision.data.lines) {
          applyReservation(stock.get(l.sku)!, l.quantity); // guards the invariant before writing
          await moveStock(tx, l.sku, -l.quantity, l.quantity);
        }
        await insertReservations(tx, data.orderId, decision.data.lines);
      }
      log.info({ outcome: decision.type, orderId: data.orderId }, 'stock decision');
      return [decision];
    }),
    OrderCancelled: applyOnce<'OrderCancelled'>(db, CONSUMER, async (tx, data, _env, log) => {
      const lines = openLines(await lockReservations(tx, data.orderId));
      if (lines.length === 0) return []; // nothing was reserved (stock rejected), or already released
      const stock = await lockProducts(tx, lines.map((l) => l.sku));
      for (const l of lines) {
        applyRelease(stock.get(l.sku)!, l.quantity);
        await moveStock(tx, l.sku, l.quantity, -l.quantity);
      }
      await settleReservations(tx, data.orderId, 'RELEASED');
      log.info({ orderId: data.orderId, lines: lines.length }, 'reservation released');
      return [{ type: 'StockReleased', data: { orderId: data.orderId, lines } }] satisfies DomainEvent[];
    }),
    OrderConfirmed: applyOnce<'OrderConfirmed'>(db, CONSUMER, async (tx, data, _env, log) => {
      const lines = openLines(await lockReservations(tx, data.orderId));
      if (lines.length === 0) return [];
      const stock = await lockProducts(tx, lines.map((l) => l.sku));
      for (const l of lines) {
        applySale(stock.get(l.sku)!, l.quantity);
        await moveStock(tx, l.sku, 0, -l.quantity);
      }
      await settleReservations(tx, data.orderId, 'COMMITTED');
      log.info({ orderId: data.orderId }, 'reservation sold');
      return [{ type: 'StockCommitted', data: { orderId: data.orderId, lines } }] satisfies DomainEvent[];
    }),
  };
}
