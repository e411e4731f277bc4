import type { CancelReason, DomainEvent } from '@saga/common/contracts/catalog';
import type { SqlClient, SqlPart, StatementSink } from '@saga/common/db/sql';
import { outboxInsert, type OutboxEntry } from '@saga/common/db/outbox';
import type { HistoryEntry, Order, OrderItem, OrderStatus } from '../domain/order';

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
export async function saveOrders(
  c: StatementSink,
  before: OrderBatch,
  after: OrderBatch,
  outbox: SqlPart,
): Promise<void> {
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
 * OrderPlaced rows), and answers the ids it inserted. An order whose id or (customer, Idempotency-Key) is taken
 * is skipped with its lines and events (ON CONFLICT DO NOTHING), so one such order never fails the others; the
 * caller tells which it was (findPlaced). Rows go in key order, so two statements that hold the same keys in
 * another order wait for each other instead of deadlocking. Nobody can follow an order before it exists, so there
 * is nothing to notify.
 */
export async function insertOrders(
  c: SqlClient,
  placed: readonly NewOrder[],
  outbox: OutboxEntry[],
): Promise<Set<string>> {
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
  const events = outboxInsert(outbox, 'SELECT id::text FROM o');
  const { rows } = await c.query<{ id: string }>({
    name: 'order.insert',
    text: `WITH o AS (INSERT INTO orders (id, customer_id, status, idempotency_key, request_hash)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS v(id, customer_id, status, k, h)
             ORDER BY v.customer_id, v.k, v.id
             ON CONFLICT DO NOTHING RETURNING id),
           i AS (INSERT INTO order_items (order_id, line_no, sku, quantity)
             SELECT x.* FROM unnest($6::uuid[], $7::int[], $8::text[], $9::int[]) AS x(order_id, line_no, sku, quantity)
             WHERE x.order_id IN (SELECT id FROM o)),
           h AS (INSERT INTO order_history (order_id, type, detail)
             SELECT x.* FROM unnest($10::uuid[], $11::text[], $12::jsonb[]) AS x(order_id, type, detail)
             WHERE x.order_id IN (SELECT id FROM o)),
           x AS (${events.text(13)})
         SELECT id FROM o`,
    values: [...o, ...items, ...h, ...events.values],
  });
  return new Set(rows.map((r) => r.id));
}

export type PlacedOrder = {
  id: string;
  customerId: string;
  key: string | null;
  hash: string | null;
  status: OrderStatus;
};

/** The orders that hold any of `ids`, or any of the (customer, Idempotency-Key) pairs of `keys`. */
export async function findPlaced(
  c: SqlClient,
  ids: readonly string[],
  keys: readonly { customerId: string; key: string }[],
): Promise<PlacedOrder[]> {
  const { rows } = await c.query<PlacedOrder>({
    name: 'order.find-placed',
    text: `SELECT id, customer_id AS "customerId", idempotency_key AS key, request_hash AS hash, status FROM orders
           WHERE id = ANY($1::uuid[])
              OR (customer_id, idempotency_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))`,
    values: [ids, keys.map((k) => k.customerId), keys.map((k) => k.key)],
  });
  return rows;
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
export async function dropWatches(c: SqlClient, olderThanSeconds: number): Promise<void> {
  await c.query('DELETE FROM order_watch WHERE created_at < now() - make_interval(secs => $1)', [olderThanSeconds]);
}

/** Mark the watches of live streams as live (their created_at is when they were last known alive). */
export async function touchWatches(c: SqlClient, watchers: readonly string[]): Promise<void> {
  if (watchers.length === 0) return;
  await c.query('UPDATE order_watch SET created_at = now() WHERE watcher = ANY($1::uuid[])', [watchers]);
}

/** Wait for any writer holding the order's row (FOR SHARE), so that what is read next includes its change. */
export async function awaitWriters(c: SqlClient, orderId: string): Promise<void> {
  await c.query({
    name: 'order.await-writers',
    text: 'SELECT 1 FROM orders WHERE id = $1 FOR SHARE',
    values: [orderId],
  });
}

type ViewRow = {
  id: string;
  customer_id: string;
  status: OrderStatus;
  reason: CancelReason | null;
  total_cents: string | null;
  created_at: Date;
  updated_at: Date;
  items: OrderView['items'];
  history: { type: string; at: string; reason: string | null }[];
};

/**
 * The order with its lines and history, in one statement so that all three come from one snapshot (a status never
 * disagrees with the history beside it). `customerId` scopes the read: another customer's order is not found.
 */
export async function getOrderView(c: SqlClient, id: string, customerId?: string): Promise<OrderView | undefined> {
  const { rows } = await c.query<ViewRow>({
    name: 'order.view',
    text: `SELECT o.id, o.customer_id, o.status, o.reason, o.total_cents, o.created_at, o.updated_at,
             coalesce((SELECT json_agg(json_build_object('sku', i.sku, 'quantity', i.quantity, 'priceCents', i.price_cents)
                ORDER BY i.line_no) FROM order_items i WHERE i.order_id = o.id), '[]') AS items,
             coalesce((SELECT json_agg(json_build_object('type', h.type, 'at', h.at, 'reason', h.detail->>'reason')
                ORDER BY h.id) FROM order_history h WHERE h.order_id = o.id), '[]') AS history
           FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.customer_id = $2)`,
    values: [id, customerId ?? null],
  });
  const row = rows[0];
  if (!row) return undefined;
  return {
    orderId: row.id,
    customerId: row.customer_id,
    status: row.status,
    reason: row.reason,
    totalCents: row.total_cents === null ? null : Number(row.total_cents),
    items: row.items,
    history: row.history.map((h) => ({
      type: h.type,
      at: new Date(h.at).toISOString(),
      ...(h.reason ? { reason: h.reason } : {}),
    })),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export type OrderSummary = Omit<OrderView, 'items' | 'history'>;

/**
 * A page of orders ($1 status, $2 customer, $3 the last order id of the previous page, $4 the page size). The order
 * says NULLS LAST, as the indexes `orders_created_idx` and `orders_status_created_idx` are built (drizzle's desc()):
 * the columns are NOT NULL, but PostgreSQL reads an index's order only for the same NULLS placement, and with the
 * default (NULLS FIRST for DESC) every page sorted all the orders it matched.
 */
export const LIST_ORDERS_SQL = `SELECT id, customer_id, status, reason, total_cents, created_at, updated_at FROM orders
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR customer_id = $2)
             AND ($3::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM orders WHERE id = $3))
           ORDER BY created_at DESC NULLS LAST, id DESC NULLS LAST LIMIT $4`;

/**
 * Newest first, keyset-paginated on (created_at, id): `after` is the last order id of the previous page. The
 * cursor's created_at is compared in SQL: it has microseconds a JavaScript Date would drop, and the orders of one
 * group commit share it. Answers undefined when `after` is no order (of this customer).
 */
export async function listOrders(
  c: SqlClient,
  q: { status?: OrderStatus; limit: number; after?: string; customerId?: string },
): Promise<OrderSummary[] | undefined> {
  const { rows } = await c.query<Omit<ViewRow, 'items' | 'history'>>({
    name: 'order.list',
    text: LIST_ORDERS_SQL,
    values: [q.status ?? null, q.customerId ?? null, q.after ?? null, q.limit],
  });
  if (rows.length === 0 && q.after) {
    const cursor = await c.query('SELECT 1 FROM orders WHERE id = $1 AND ($2::text IS NULL OR customer_id = $2)', [
      q.after,
      q.customerId ?? null,
    ]);
    if (cursor.rowCount === 0) return undefined;
  }
  return rows.map((r) => ({
    orderId: r.id,
    customerId: r.customer_id,
    status: r.status,
    reason: r.reason,
    totalCents: r.total_cents === null ? null : Number(r.total_cents),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  }));
}

/**
 * Orders in progress (PENDING) placed within the last `withinSeconds`: the saga's backlog, for admission. An index
 * scan of the PENDING entries of `orders_status_created_idx`.
 */
export async function countPending(c: SqlClient, withinSeconds: number): Promise<number> {
  const r = await c.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM orders WHERE status = 'PENDING' AND created_at > now() - make_interval(secs => $1)`,
    [withinSeconds],
  );
  return r.rows[0]!.n;
}
