import { and, asc, desc, eq, lt, or, sql, type SQL } from 'drizzle-orm';
import type { CancelReason } from '@saga/common/contracts';
import type { Tx } from '@saga/common/outbox';
import type { HistoryEntry, Order, OrderStatus, Transition } from '../domain/order';
import { orderHistory, orderItems, orders } from './schema';

/** Channel on which every committed change of an order is announced (payload: the order id), in its transaction. */
export const ORDER_CHANNEL = 'order_events';

export type OrderView = {
  orderId: string;
  customerId: string;
  status: OrderStatus;
  reason: CancelReason | null;
  totalCents: number | null;
  items: { sku: string; quantity: number; priceCents: number | null }[];
  history: { type: string; at: string; reason?: string }[];
  createdAt: string;
  updatedAt: string;
};

async function notify(tx: Tx, orderId: string) {
  await tx.execute(sql`SELECT pg_notify(${ORDER_CHANNEL}, ${orderId})`);
}

async function appendHistory(tx: Tx, orderId: string, entries: readonly HistoryEntry[]) {
  if (entries.length === 0) return;
  await tx.insert(orderHistory).values(entries.map((h) => ({ orderId, type: h.type, detail: h.reason ? { reason: h.reason } : null })));
}

export async function insertOrder(tx: Tx, t: Transition, idempotency: { key: string; hash: string } | undefined): Promise<void> {
  const o = t.order;
  await tx.insert(orders).values({
    id: o.id,
    customerId: o.customerId,
    status: o.status,
    idempotencyKey: idempotency?.key ?? null,
    requestHash: idempotency?.hash ?? null,
  });
  await tx.insert(orderItems).values(o.items.map((i, n) => ({ orderId: o.id, lineNo: n + 1, sku: i.sku, quantity: i.quantity, priceCents: i.priceCents })));
  await appendHistory(tx, o.id, t.history);
  await notify(tx, o.id);
}

export async function findByIdempotencyKey(tx: Tx, key: string) {
  const [row] = await tx.select({ id: orders.id, hash: orders.requestHash, status: orders.status }).from(orders).where(eq(orders.idempotencyKey, key));
  return row;
}

function loadItems(tx: Tx, orderId: string) {
  return tx
    .select({ sku: orderItems.sku, quantity: orderItems.quantity, priceCents: orderItems.priceCents })
    .from(orderItems)
    .where(eq(orderItems.orderId, orderId))
    .orderBy(asc(orderItems.lineNo));
}

/** The order with its items, its row locked until the transaction ends. */
export async function lockOrder(tx: Tx, id: string): Promise<Order | undefined> {
  const [row] = await tx
    .select({ id: orders.id, customerId: orders.customerId, status: orders.status, reason: orders.reason, totalCents: orders.totalCents })
    .from(orders)
    .where(eq(orders.id, id))
    .for('update');
  if (!row) return undefined;
  const items = await loadItems(tx, id);
  return { ...row, reason: row.reason as CancelReason | null, items };
}

export async function saveTransition(tx: Tx, before: Order, t: Transition): Promise<void> {
  const o = t.order;
  await tx.update(orders).set({ status: o.status, reason: o.reason, totalCents: o.totalCents, updatedAt: sql`now()` }).where(eq(orders.id, o.id));
  for (const [n, item] of o.items.entries()) {
    if (item.priceCents !== before.items[n]?.priceCents) {
      await tx.update(orderItems).set({ priceCents: item.priceCents }).where(and(eq(orderItems.orderId, o.id), eq(orderItems.lineNo, n + 1)));
    }
  }
  await appendHistory(tx, o.id, t.history);
  await notify(tx, o.id);
}

export async function getOrderView(tx: Tx, id: string): Promise<OrderView | undefined> {
  const [row] = await tx.select().from(orders).where(eq(orders.id, id));
  if (!row) return undefined;
  const items = await loadItems(tx, id);
  const history = await tx
    .select({ type: orderHistory.type, at: orderHistory.at, detail: orderHistory.detail })
    .from(orderHistory)
    .where(eq(orderHistory.orderId, id))
    .orderBy(asc(orderHistory.id));
  return {
    orderId: row.id,
    customerId: row.customerId,
    status: row.status,
    reason: row.reason as CancelReason | null,
    totalCents: row.totalCents,
    items,
    history: history.map((h) => {
      const reason = (h.detail as { reason?: string } | null)?.reason;
      return { type: h.type, at: h.at.toISOString(), ...(reason ? { reason } : {}) };
    }),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Newest first, keyset-paginated on (created_at, id): `after` is the last order id of the previous page. */
export async function listOrders(tx: Tx, q: { status?: OrderStatus; limit: number; after?: string }) {
  const conditions: SQL[] = [];
  if (q.status) conditions.push(eq(orders.status, q.status));
  if (q.after) {
    const [cursor] = await tx.select({ createdAt: orders.createdAt, id: orders.id }).from(orders).where(eq(orders.id, q.after));
    if (!cursor) return undefined;
    conditions.push(or(lt(orders.createdAt, cursor.createdAt), and(eq(orders.createdAt, cursor.createdAt), lt(orders.id, cursor.id)))!);
  }
  return tx
    .select({ orderId: orders.id, customerId: orders.customerId, status: orders.status, reason: orders.reason, totalCents: orders.totalCents, createdAt: orders.createdAt, updatedAt: orders.updatedAt })
    .from(orders)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(orders.createdAt), desc(orders.id))
    .limit(q.limit);
}
