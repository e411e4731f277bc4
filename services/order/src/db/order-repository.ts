import { and, asc, desc, eq, lt, or, type SQL } from 'drizzle-orm';
import type { CancelReason, DomainEvent } from '@saga/common/contracts/catalog';
import type { SqlClient, SqlPart, Db } from '@saga/common/db/sql';
import type { HistoryEntry, Order, OrderItem, OrderStatus } from '../domain/order';
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

type LoadedOrder = {
  id: string;
  customer_id: string;
  status: OrderStatus;
  reason: CancelReason | null;
  total_cents: number | null;
  items: OrderItem[];
};

/**
 * One statement: claim the messages in the inbox and lock the orders `ids` (id order, so concurrent batches never
 * deadlock) with their items.
 */
export async function loadOrders(
  c: SqlClient,
  inbox: SqlPart,
  ids: readonly string[],
): Promise<{ claimed: string[]; orders: Map<string, Order> }> {
  const n = inbox.values.length;
  const { rows } = await c.query<{ claimed: string[] | null; orders: LoadedOrder[] }>({
    name: 'order.load',
    text: `WITH claimed AS (${inbox.text(1)}),
      o AS (SELECT id, customer_id, status, reason, total_cents FROM orders WHERE id = ANY($${n + 1}::uuid[]) ORDER BY id FOR UPDATE)
      SELECT (SELECT array_agg(message_id) FROM claimed) AS claimed,
             (SELECT coalesce(json_agg(json_build_object('id', o.id, 'customer_id', o.customer_id, 'status', o.status, 'reason', o.reason,
                'total_cents', o.total_cents, 'items',
                (SELECT json_agg(json_build_object('sku', i.sku, 'quantity', i.quantity, 'priceCents', i.price_cents) ORDER BY i.line_no)
                 FROM order_items i WHERE i.order_id = o.id))), '[]') FROM o) AS orders`,
    values: [...inbox.values, ids],
  });
  const row = rows[0]!;
  const orders = new Map<string, Order>();
  for (const o of row.orders) {
    orders.set(o.id, {
      id: o.id,
      customerId: o.customer_id,
      status: o.status,
      reason: o.reason,
      totalCents: o.total_cents === null ? null : Number(o.total_cents),
      items: o.items,
    });
  }
  return { claimed: row.claimed ?? [], orders };
}

/** Orders as a batch left them, and the history lines it recorded (in order). */
export type OrderBatch = {
  orders: ReadonlyMap<string, Order>;
  history: readonly (HistoryEntry & { orderId: string })[];
};

/**
 * One statement: the order rows and item prices that differ between `before` and `after`, the new history lines,
 * the outbox rows, and a notification for each changed order that someone follows (NOTIFY takes a database-wide
 * lock until commit, so it is sent only when a stream listens).
 */
export async function saveOrders(c: SqlClient, before: OrderBatch, after: OrderBatch, outbox: SqlPart): Promise<void> {
  const o: [string[], string[], (string | null)[], (number | null)[]] = [[], [], [], []];
  const items: [string[], number[], (number | null)[]] = [[], [], []];
  for (const [id, order] of after.orders) {
    const was = before.orders.get(id);
    if (was === order) continue;
    o[0].push(id);
    o[1].push(order.status);
    o[2].push(order.reason);
    o[3].push(order.totalCents);
    order.items.forEach((item, n) => {
      if (item.priceCents === was?.items[n]?.priceCents) return;
      items[0].push(id);
      items[1].push(n + 1);
      items[2].push(item.priceCents);
    });
  }
  const added = after.history.slice(before.history.length);
  const h: [string[], string[], (string | null)[]] = [
    added.map((e) => e.orderId),
    added.map((e) => e.type),
    added.map((e) => (e.reason ? JSON.stringify({ reason: e.reason }) : null)),
  ];
  await c.query({
    name: 'order.save',
    text: `WITH o AS (UPDATE orders o SET status = v.status, reason = v.reason, total_cents = v.total, updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS v(id, status, reason, total) WHERE o.id = v.id),
           i AS (UPDATE order_items i SET price_cents = v.price
             FROM unnest($5::uuid[], $6::int[], $7::bigint[]) AS v(order_id, line_no, price) WHERE i.order_id = v.order_id AND i.line_no = v.line_no),
           h AS (INSERT INTO order_history (order_id, type, detail) SELECT * FROM unnest($8::uuid[], $9::text[], $10::jsonb[])),
           x AS (${outbox.text(11)})
         SELECT pg_notify('${ORDER_CHANNEL}', w.order_id::text) FROM (SELECT DISTINCT order_id FROM order_watch WHERE order_id = ANY($1::uuid[])) w`,
    values: [...o, ...items, ...h, ...outbox.values],
  });
}

export type NewOrder = {
  order: Order;
  history: readonly HistoryEntry[];
  events: readonly DomainEvent[];
  idempotency?: { key: string; hash: string };
};

/**
 * Place orders in one statement (its own transaction): the orders, their items and history, and `outbox` (their
 * OrderPlaced rows). Nobody can follow an order before it exists, so there is nothing to notify. A unique
 * violation (an Idempotency-Key used twice) fails the whole statement.
 */
export async function insertOrders(c: SqlClient, placed: readonly NewOrder[], outbox: SqlPart): Promise<void> {
  const o: [string[], string[], string[], (string | null)[], (string | null)[]] = [[], [], [], [], []];
  const items: [string[], number[], string[], number[]] = [[], [], [], []];
  const h: [string[], string[], (string | null)[]] = [[], [], []];
  for (const { order, history, idempotency } of placed) {
    o[0].push(order.id);
    o[1].push(order.customerId);
    o[2].push(order.status);
    o[3].push(idempotency?.key ?? null);
    o[4].push(idempotency?.hash ?? null);
    order.items.forEach((i, n) => {
      items[0].push(order.id);
      items[1].push(n + 1);
      items[2].push(i.sku);
      items[3].push(i.quantity);
    });
    for (const e of history) {
      h[0].push(order.id);
      h[1].push(e.type);
      h[2].push(e.reason ? JSON.stringify({ reason: e.reason }) : null);
    }
  }
  await c.query({
    name: 'order.insert',
    text: `WITH o AS (INSERT INTO orders (id, customer_id, status, idempotency_key, request_hash)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])),
           i AS (INSERT INTO order_items (order_id, line_no, sku, quantity) SELECT * FROM unnest($6::uuid[], $7::int[], $8::text[], $9::int[])),
           h AS (INSERT INTO order_history (order_id, type, detail) SELECT * FROM unnest($10::uuid[], $11::text[], $12::jsonb[])),
           x AS (${outbox.text(13)})
         SELECT 1`,
    values: [...o, ...items, ...h, ...outbox.values],
  });
}

/**
 * Follow an order from a server-sent event stream: from now on every writer of the order notifies. The row lock
 * read afterwards waits for a writer that decided not to notify before the watch existed, so the first read after
 * `watchOrder` sees its change.
 */
export async function watchOrder(c: SqlClient, orderId: string, watcher: string): Promise<void> {
  await c.query({
    name: 'order.watch',
    text: 'INSERT INTO order_watch (order_id, watcher) VALUES ($1, $2) ON CONFLICT DO NOTHING',
    values: [orderId, watcher],
  });
}

export async function unwatchOrder(c: SqlClient, orderId: string, watcher: string): Promise<void> {
  await c.query({
    name: 'order.unwatch',
    text: 'DELETE FROM order_watch WHERE order_id = $1 AND watcher = $2',
    values: [orderId, watcher],
  });
}

/** Watches of a replica that ended without removing them (crash): they would only cost notifications. */
export async function dropWatches(c: SqlClient, olderThanHours: number): Promise<void> {
  await c.query('DELETE FROM order_watch WHERE created_at < now() - make_interval(hours => $1)', [olderThanHours]);
}

/** Wait for any writer holding the order's row (FOR SHARE), so that what is read next includes its change. */
export async function awaitWriters(c: SqlClient, orderId: string): Promise<void> {
  await c.query({
    name: 'order.await-writers',
    text: 'SELECT 1 FROM orders WHERE id = $1 FOR SHARE',
    values: [orderId],
  });
}

export async function findByIdempotencyKey(tx: Db, key: string) {
  const [row] = await tx
    .select({ id: orders.id, hash: orders.requestHash, status: orders.status })
    .from(orders)
    .where(eq(orders.idempotencyKey, key));
  return row;
}

function loadItems(tx: Db, orderId: string) {
  return tx
    .select({ sku: orderItems.sku, quantity: orderItems.quantity, priceCents: orderItems.priceCents })
    .from(orderItems)
    .where(eq(orderItems.orderId, orderId))
    .orderBy(asc(orderItems.lineNo));
}

export async function getOrderView(tx: Db, id: string): Promise<OrderView | undefined> {
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
export async function listOrders(tx: Db, q: { status?: OrderStatus; limit: number; after?: string }) {
  const conditions: SQL[] = [];
  if (q.status) conditions.push(eq(orders.status, q.status));
  if (q.after) {
    const [cursor] = await tx
      .select({ createdAt: orders.createdAt, id: orders.id })
      .from(orders)
      .where(eq(orders.id, q.after));
    if (!cursor) return undefined;
    conditions.push(
      or(
        lt(orders.createdAt, cursor.createdAt),
        and(eq(orders.createdAt, cursor.createdAt), lt(orders.id, cursor.id)),
      )!,
    );
  }
  return tx
    .select({
      orderId: orders.id,
      customerId: orders.customerId,
      status: orders.status,
      reason: orders.reason,
      totalCents: orders.totalCents,
      createdAt: orders.createdAt,
      updatedAt: orders.updatedAt,
    })
    .from(orders)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(desc(orders.createdAt), desc(orders.id))
    .limit(q.limit);
}
