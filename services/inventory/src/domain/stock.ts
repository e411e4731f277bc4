import type { Decider } from '@saga/common/domain/decider';
import type { DomainEvent, OrderLine, ReservedLine, StockRejectReason } from '@saga/common/contracts/catalog';

/** A product as the reservation rules see it. */
export type Product = { sku: string; priceCents: number; available: number; reserved: number };
export type ReservationStatus = 'RESERVED' | 'RELEASED' | 'COMMITTED';
export type Reservation = ReservedLine & { status: ReservationStatus };

/** What the rules need: the products involved, and each order's reservation lines (sku order). */
export type Inventory = {
  products: ReadonlyMap<string, Product>;
  reservations: ReadonlyMap<string, readonly Reservation[]>;
  /** Orders known to be cancelled (loaded for the orders at hand): a reserve for one of them does nothing. */
  cancelled?: ReadonlySet<string>;
};

export type InventoryCommand =
  | { type: 'ReserveStock'; orderId: string; customerId: string; items: readonly OrderLine[] }
  | { type: 'ReleaseStock'; orderId: string }
  | { type: 'SellStock'; orderId: string };

export type InventoryEvent = Extract<
  DomainEvent,
  { type: 'StockReserved' | 'StockRejected' | 'StockReleased' | 'StockCommitted' }
>;

/** Order lines with the same sku merged, in sku order: the order in which products are locked. */
export function mergeLines(items: readonly OrderLine[]): OrderLine[] {
  const bySku = new Map<string, number>();
  for (const i of items) bySku.set(i.sku, (bySku.get(i.sku) ?? 0) + i.quantity);
  return [...bySku.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([sku, quantity]) => ({ sku, quantity }));
}

/** What is still held for an order: only RESERVED lines can be released or sold, once. */
export function openLines(reservations: readonly Reservation[]): ReservedLine[] {
  return reservations
    .filter((r) => r.status === 'RESERVED')
    .map(({ sku, quantity, priceCents }) => ({ sku, quantity, priceCents }));
}

/**
 * Reserve every line or none. An unknown product wins over a short one (it can never succeed); otherwise the
 * first short line in sku order is named. An order that already has a reservation is not reserved again.
 * Release and sale act on the lines still RESERVED, once.
 */
export function decide(state: Inventory, cmd: InventoryCommand): InventoryEvent[] {
  const held = state.reservations.get(cmd.orderId) ?? [];
  switch (cmd.type) {
    case 'ReserveStock': {
      // Already reserved, or cancelled before the reserve arrived: nothing to hold.
      if (held.length > 0 || state.cancelled?.has(cmd.orderId)) return [];
      const lines = mergeLines(cmd.items);
      const reject = (reason: StockRejectReason, sku: string): InventoryEvent[] => [
        { type: 'StockRejected', data: { orderId: cmd.orderId, reason, sku } },
      ];
      const unknown = lines.find((l) => !state.products.has(l.sku));
      if (unknown) return reject('UNKNOWN_PRODUCT', unknown.sku);
      const short = lines.find((l) => state.products.get(l.sku)!.available < l.quantity);
      if (short) return reject('OUT_OF_STOCK', short.sku);
      const reserved = lines.map((l) => ({
        sku: l.sku,
        quantity: l.quantity,
        priceCents: state.products.get(l.sku)!.priceCents,
      }));
      const totalCents = reserved.reduce((sum, l) => sum + l.quantity * l.priceCents, 0);
      return [
        {
          type: 'StockReserved',
          data: { orderId: cmd.orderId, customerId: cmd.customerId, lines: reserved, totalCents },
        },
      ];
    }
    case 'ReleaseStock': {
      const lines = openLines(held);
      return lines.length === 0 ? [] : [{ type: 'StockReleased', data: { orderId: cmd.orderId, lines } }];
    }
    case 'SellStock': {
      const lines = openLines(held);
      return lines.length === 0 ? [] : [{ type: 'StockCommitted', data: { orderId: cmd.orderId, lines } }];
    }
  }
}

/** Reserved: available moves to reserved. Released: back to available. Committed (sold): leaves the warehouse. */
export function evolve(state: Inventory, e: InventoryEvent): Inventory {
  switch (e.type) {
    case 'StockRejected':
      return state;
    case 'StockReserved':
      return {
        products: moveStock(state.products, e.data.lines, (p, q) => {
          if (q > p.available) throw new Error(`cannot reserve ${q} of ${p.sku}: ${p.available} available`);
          return { ...p, available: p.available - q, reserved: p.reserved + q };
        }),
        reservations: withLines(
          state.reservations,
          e.data.orderId,
          e.data.lines.map((l) => ({ ...l, status: 'RESERVED' as const })),
        ),
      };
    case 'StockReleased':
      return settle(state, e.data.orderId, e.data.lines, 'RELEASED', (p, q) => ({
        ...p,
        available: p.available + q,
        reserved: Math.max(0, p.reserved - q),
      }));
    case 'StockCommitted':
      return settle(state, e.data.orderId, e.data.lines, 'COMMITTED', (p, q) => ({
        ...p,
        reserved: Math.max(0, p.reserved - q),
      }));
  }
}

/** The state after an order's cancel was seen, whether or not it held a reservation. */
export function markCancelled(state: Inventory, orderId: string): Inventory {
  if (state.cancelled?.has(orderId)) return state;
  return { ...state, cancelled: new Set(state.cancelled).add(orderId) };
}

export const inventoryDecider: Decider<Inventory, InventoryCommand, InventoryEvent> = { decide, evolve };

function moveStock(
  products: ReadonlyMap<string, Product>,
  lines: readonly ReservedLine[],
  move: (p: Product, quantity: number) => Product,
) {
  const next = new Map(products);
  for (const l of lines) {
    const p = next.get(l.sku);
    if (!p) throw new Error(`product ${l.sku} is not loaded`);
    next.set(l.sku, move(p, l.quantity));
  }
  return next;
}

function withLines(reservations: Inventory['reservations'], orderId: string, lines: readonly Reservation[]) {
  return new Map(reservations).set(orderId, lines);
}

function settle(
  state: Inventory,
  orderId: string,
  lines: readonly ReservedLine[],
  status: ReservationStatus,
  move: (p: Product, quantity: number) => Product,
): Inventory {
  const settled = new Set(lines.map((l) => l.sku));
  const held = state.reservations.get(orderId) ?? [];
  return {
    products: moveStock(state.products, lines, move),
    reservations: withLines(
      state.reservations,
      orderId,
      held.map((r) => (r.status === 'RESERVED' && settled.has(r.sku) ? { ...r, status } : r)),
    ),
  };
}
