import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import type { Tx } from '@saga/common/outbox';
import type { ReservedLine } from '@saga/common/contracts';
import type { Product, Reservation } from '../domain/stock';
import { products, reservations } from './schema';

const productColumns = { sku: products.sku, priceCents: products.priceCents, available: products.available, reserved: products.reserved };

/** Lock the products in sku order: concurrent orders touching the same products then never deadlock. */
export async function lockProducts(tx: Tx, skus: readonly string[]): Promise<Map<string, Product>> {
  const sorted = [...new Set(skus)].sort();
  if (sorted.length === 0) return new Map();
  const rows = await tx.select(productColumns).from(products).where(inArray(products.sku, sorted)).orderBy(asc(products.sku)).for('update');
  return new Map(rows.map((r) => [r.sku, r]));
}

/** Move `delta` units from available to reserved (negative: back). */
export async function moveStock(tx: Tx, sku: string, availableDelta: number, reservedDelta: number): Promise<void> {
  await tx
    .update(products)
    .set({ available: sql`${products.available} + ${availableDelta}`, reserved: sql`${products.reserved} + ${reservedDelta}`, updatedAt: sql`now()` })
    .where(eq(products.sku, sku));
}

export async function insertReservations(tx: Tx, orderId: string, lines: readonly ReservedLine[]): Promise<void> {
  if (lines.length === 0) return;
  await tx.insert(reservations).values(lines.map((l) => ({ orderId, sku: l.sku, quantity: l.quantity, priceCents: l.priceCents, status: 'RESERVED' as const })));
}

/** An order's reservations, locked, in sku order. */
export async function lockReservations(tx: Tx, orderId: string): Promise<Reservation[]> {
  return tx
    .select({ sku: reservations.sku, quantity: reservations.quantity, priceCents: reservations.priceCents, status: reservations.status })
    .from(reservations)
    .where(eq(reservations.orderId, orderId))
    .orderBy(asc(reservations.sku))
    .for('update');
}

export async function settleReservations(tx: Tx, orderId: string, status: 'RELEASED' | 'COMMITTED'): Promise<void> {
  await tx
    .update(reservations)
    .set({ status, updatedAt: sql`now()` })
    .where(and(eq(reservations.orderId, orderId), eq(reservations.status, 'RESERVED')));
}

export async function upsertProduct(tx: Tx, p: { sku: string; name: string; priceCents: number; stock: number }) {
  const [row] = await tx
    .insert(products)
    .values({ sku: p.sku, name: p.name, priceCents: p.priceCents, available: p.stock })
    .onConflictDoUpdate({ target: products.sku, set: { name: p.name, priceCents: p.priceCents, available: p.stock, updatedAt: sql`now()` } })
    .returning({ sku: products.sku, name: products.name, priceCents: products.priceCents, available: products.available, reserved: products.reserved });
  return row!;
}

const publicColumns = { sku: products.sku, name: products.name, priceCents: products.priceCents, available: products.available, reserved: products.reserved };

export async function findProduct(tx: Tx, sku: string) {
  const [row] = await tx.select(publicColumns).from(products).where(eq(products.sku, sku));
  return row;
}

export async function listProducts(tx: Tx, limit: number, after?: string) {
  return tx
    .select(publicColumns)
    .from(products)
    .where(after ? gt(products.sku, after) : undefined)
    .orderBy(asc(products.sku))
    .limit(limit);
}
