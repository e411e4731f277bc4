import { asc, eq, gt, sql } from 'drizzle-orm';
import type { SqlClient, SqlPart, StatementSink, Db } from '@saga/common/db/sql';
import type { Inventory, Product, Reservation, ReservationStatus } from '../domain/stock';
import { products } from './schema';

type Loaded = {
  claimed: string[] | null;
  reservations: { order_id: string; sku: string; quantity: number; price_cents: number; status: ReservationStatus }[];
  products: { sku: string; price_cents: number; available: number; reserved: number }[];
  cancelled: string[] | null;
};

/**
 * One statement: claim the messages in the inbox, lock the reservations of `orderIds` and then the products of
 * `skus` and of those reservations, each in key order (concurrent batches touching the same rows then never
 * deadlock).
 */
export async function loadInventory(
  c: SqlClient,
  inbox: SqlPart,
  orderIds: readonly string[],
  skus: readonly string[],
): Promise<{ claimed: string[]; state: Inventory }> {
  const n = inbox.values.length;
  const { rows } = await c.query<Loaded>({
    name: 'inventory.load',
    text: `WITH claimed AS (${inbox.text(1)}),
      r AS (SELECT order_id, sku, quantity, price_cents, status FROM reservations WHERE order_id = ANY($${n + 1}::uuid[]) ORDER BY order_id, sku FOR UPDATE),
      p AS (SELECT sku, price_cents, available, reserved FROM products
            WHERE sku IN (SELECT unnest($${n + 2}::text[]) UNION SELECT sku FROM r) ORDER BY sku FOR UPDATE)
      SELECT (SELECT array_agg(message_id) FROM claimed) AS claimed,
             (SELECT array_agg(order_id::text) FROM cancelled_orders WHERE order_id = ANY($${n + 1}::uuid[])) AS cancelled,
             (SELECT coalesce(json_agg(r), '[]') FROM r) AS reservations,
             (SELECT coalesce(json_agg(p), '[]') FROM p) AS products`,
    values: [...inbox.values, orderIds, skus],
  });
  const row = rows[0]!;
  const reservations = new Map<string, Reservation[]>();
  for (const r of row.reservations) {
    const lines = reservations.get(r.order_id) ?? [];
    lines.push({ sku: r.sku, quantity: r.quantity, priceCents: Number(r.price_cents), status: r.status });
    reservations.set(r.order_id, lines);
  }
  const products = new Map<string, Product>(
    row.products.map((p) => [
      p.sku,
      { sku: p.sku, priceCents: Number(p.price_cents), available: p.available, reserved: p.reserved },
    ]),
  );
  return { claimed: row.claimed ?? [], state: { products, reservations, cancelled: new Set(row.cancelled ?? []) } };
}

/**
 * One statement: write the products and reservations that differ between `before` and `after` (the values
 * evolve computed on rows this transaction holds locked) and run `outbox`.
 */
export async function saveInventory(
  c: StatementSink,
  before: Inventory,
  after: Inventory,
  outbox: SqlPart,
): Promise<void> {
  const p: [string[], number[], number[]] = [[], [], []];
  for (const [sku, product] of after.products) {
    if (before.products.get(sku) === product) continue;
    p[0].push(sku);
    p[1].push(product.available);
    p[2].push(product.reserved);
  }
  const r: [string[], string[], number[], number[], string[]] = [[], [], [], [], []];
  for (const [orderId, lines] of after.reservations) {
    if (before.reservations.get(orderId) === lines) continue;
    for (const l of lines) {
      r[0].push(orderId);
      r[1].push(l.sku);
      r[2].push(l.quantity);
      r[3].push(l.priceCents);
      r[4].push(l.status);
    }
  }
  await c.query({
    name: 'inventory.save',
    text: `WITH p AS (UPDATE products p SET available = v.available, reserved = v.reserved, updated_at = now()
             FROM unnest($1::text[], $2::int[], $3::int[]) AS v(sku, available, reserved) WHERE p.sku = v.sku),
           r AS (INSERT INTO reservations (order_id, sku, quantity, price_cents, status)
             SELECT * FROM unnest($4::uuid[], $5::text[], $6::int[], $7::bigint[], $8::text[])
             ON CONFLICT (order_id, sku) DO UPDATE SET status = excluded.status, updated_at = now()),
           c AS (INSERT INTO cancelled_orders (order_id) SELECT unnest($9::uuid[]) ON CONFLICT DO NOTHING),
           o AS (${outbox.text(10)})
         SELECT 1`,
    values: [...p, ...r, [...(after.cancelled ?? [])].filter((id) => !before.cancelled?.has(id)), ...outbox.values],
  });
}

export async function upsertProduct(tx: Db, p: { sku: string; name: string; priceCents: number; stock: number }) {
  const [row] = await tx
    .insert(products)
    .values({ sku: p.sku, name: p.name, priceCents: p.priceCents, available: p.stock })
    .onConflictDoUpdate({
      target: products.sku,
      set: { name: p.name, priceCents: p.priceCents, available: p.stock, updatedAt: sql`now()` },
    })
    .returning({
      sku: products.sku,
      name: products.name,
      priceCents: products.priceCents,
      available: products.available,
      reserved: products.reserved,
    });
  return row!;
}

const publicColumns = {
  sku: products.sku,
  name: products.name,
  priceCents: products.priceCents,
  available: products.available,
  reserved: products.reserved,
};

export async function findProduct(tx: Db, sku: string) {
  const [row] = await tx.select(publicColumns).from(products).where(eq(products.sku, sku));
  return row;
}

export async function listProducts(tx: Db, limit: number, after?: string) {
  return tx
    .select(publicColumns)
    .from(products)
    .where(after ? gt(products.sku, after) : undefined)
    .orderBy(asc(products.sku))
    .limit(limit);
}
