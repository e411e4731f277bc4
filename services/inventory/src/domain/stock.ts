import type { EventData, OrderLine, ReservedLine, StockRejectReason } from '@saga/common/contracts';

/** A product as the reservation rules see it. */
export type Product = { sku: string; priceCents: number; available: number; reserved: number };
export type Reservation = { sku: string; quantity: number; priceCents: number; status: 'RESERVED' | 'RELEASED' | 'COMMITTED' };

export type ReserveStock = { orderId: string; customerId: string; items: readonly OrderLine[] };

export type ReservationDecision =
  | { type: 'StockReserved'; data: EventData<'StockReserved'> }
  | { type: 'StockRejected'; data: EventData<'StockRejected'> };

/** Order lines with the same sku merged, in sku order: the order in which products are locked. */
export function mergeLines(items: readonly OrderLine[]): OrderLine[] {
  const bySku = new Map<string, number>();
  for (const i of items) bySku.set(i.sku, (bySku.get(i.sku) ?? 0) + i.quantity);
  return [...bySku.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([sku, quantity]) => ({ sku, quantity }));
}

/**
 * Reserve every line or none. An unknown product wins over a short one (it can never succeed); otherwise the
 * first short line in sku order is named.
 */
export function decideReservation(products: ReadonlyMap<string, Product>, cmd: ReserveStock): ReservationDecision {
  const lines = mergeLines(cmd.items);
  const reject = (reason: StockRejectReason, sku: string): ReservationDecision => ({ type: 'StockRejected', data: { orderId: cmd.orderId, reason, sku } });
  const unknown = lines.find((l) => !products.has(l.sku));
  if (unknown) return reject('UNKNOWN_PRODUCT', unknown.sku);
  const short = lines.find((l) => products.get(l.sku)!.available < l.quantity);
  if (short) return reject('OUT_OF_STOCK', short.sku);
  const reserved: ReservedLine[] = lines.map((l) => ({ sku: l.sku, quantity: l.quantity, priceCents: products.get(l.sku)!.priceCents }));
  const totalCents = reserved.reduce((sum, l) => sum + l.quantity * l.priceCents, 0);
  return { type: 'StockReserved', data: { orderId: cmd.orderId, customerId: cmd.customerId, lines: reserved, totalCents } };
}

/** Stock after a reservation: available moves to reserved. */
export function applyReservation(p: Product, quantity: number): Product {
  if (quantity > p.available) throw new Error(`cannot reserve ${quantity} of ${p.sku}: ${p.available} available`);
  return { ...p, available: p.available - quantity, reserved: p.reserved + quantity };
}

/** Stock after a release (compensation): reserved goes back to available. */
export function applyRelease(p: Product, quantity: number): Product {
  return { ...p, available: p.available + quantity, reserved: Math.max(0, p.reserved - quantity) };
}

/** Stock after a sale: the reserved quantity leaves the warehouse. */
export function applySale(p: Product, quantity: number): Product {
  return { ...p, reserved: Math.max(0, p.reserved - quantity) };
}

/** What is still held for an order: only RESERVED lines can be released or sold, once. */
export function openLines(reservations: readonly Reservation[]): ReservedLine[] {
  return reservations.filter((r) => r.status === 'RESERVED').map(({ sku, quantity, priceCents }) => ({ sku, quantity, priceCents }));
}
