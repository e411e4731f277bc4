import { specFor } from '@saga/common/domain/decider';
import {
  decide,
  inventoryDecider,
  markCancelled,
  mergeLines,
  openLines,
  type Inventory,
  type InventoryCommand,
  type Product,
} from '../../src/domain/stock';

const O = '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11';
const spec = specFor(inventoryDecider);
const stock = (...ps: Partial<Product>[]): Inventory => ({
  products: new Map(
    ps.map((p, i) => [
      p.sku ?? `sku-${i}`,
      { sku: `sku-${i}`, priceCents: 100, available: 10, reserved: 0, ...p } as Product,
    ]),
  ),
  reservations: new Map(),
});
const reserve = (...items: [string, number][]): InventoryCommand => ({
  type: 'ReserveStock',
  orderId: O,
  customerId: 'c1',
  items: items.map(([sku, quantity]) => ({ sku, quantity })),
});
const reserved = (lines: { sku: string; quantity: number; priceCents: number }[]) =>
  ({
    type: 'StockReserved',
    data: { orderId: O, customerId: 'c1', lines, totalCents: lines.reduce((s, l) => s + l.quantity * l.priceCents, 0) },
  }) as const;

describe('reserve stock', () => {
  it('reserves every line at the current unit price and totals it', () => {
    expect(
      spec.given(stock({ sku: 'a', priceCents: 250 }, { sku: 'b', priceCents: 100 })).when(reserve(['b', 1], ['a', 2]))
        .events,
    ).toEqual([
      {
        type: 'StockReserved',
        data: {
          orderId: O,
          customerId: 'c1',
          lines: [
            { sku: 'a', quantity: 2, priceCents: 250 },
            { sku: 'b', quantity: 1, priceCents: 100 },
          ],
          totalCents: 600,
        },
      },
    ]);
  });

  it('moves the reserved quantity from available to reserved and holds the lines for the order', () => {
    const { state } = spec.given(stock({ sku: 'a', available: 5, reserved: 1 })).when(reserve(['a', 2]));
    expect(state.products.get('a')).toMatchObject({ available: 3, reserved: 3 });
    expect(state.reservations.get(O)).toEqual([{ sku: 'a', quantity: 2, priceCents: 100, status: 'RESERVED' }]);
  });

  it('rejects when stock is short, naming the sku, and changes nothing', () => {
    const given = stock({ sku: 'a', available: 1 });
    const { events, state } = spec.given(given).when(reserve(['a', 2]));
    expect(events).toEqual([{ type: 'StockRejected', data: { orderId: O, reason: 'OUT_OF_STOCK', sku: 'a' } }]);
    expect(state).toEqual(given);
  });

  it('counts repeated lines of one sku together', () => {
    expect(spec.given(stock({ sku: 'a', available: 3 })).when(reserve(['a', 2], ['a', 2])).events[0]!.type).toBe(
      'StockRejected',
    );
    expect(
      mergeLines([
        { sku: 'b', quantity: 1 },
        { sku: 'a', quantity: 2 },
        { sku: 'b', quantity: 3 },
      ]),
    ).toEqual([
      { sku: 'a', quantity: 2 },
      { sku: 'b', quantity: 4 },
    ]);
  });

  it('names an unknown product before a short one', () => {
    expect(spec.given(stock({ sku: 'a', available: 0 })).when(reserve(['a', 1], ['zz', 1])).events).toEqual([
      { type: 'StockRejected', data: { orderId: O, reason: 'UNKNOWN_PRODUCT', sku: 'zz' } },
    ]);
  });

  it('reserves exactly what is available', () => {
    expect(spec.given(stock({ sku: 'a', available: 2 })).when(reserve(['a', 2])).events[0]!.type).toBe('StockReserved');
  });

  it('does not reserve twice for one order', () => {
    expect(
      spec.given(stock({ sku: 'a' }), reserved([{ sku: 'a', quantity: 1, priceCents: 100 }])).when(reserve(['a', 1]))
        .events,
    ).toEqual([]);
  });

  it('refuses to evolve a reservation of more than is available (the invariant guard)', () => {
    expect(() =>
      inventoryDecider.evolve(
        stock({ sku: 'a', available: 1 }),
        reserved([{ sku: 'a', quantity: 2, priceCents: 100 }]),
      ),
    ).toThrow('cannot reserve 2 of a');
  });
});

describe('release and sell', () => {
  const line = { sku: 'a', quantity: 2, priceCents: 100 };
  const given = () => spec.given(stock({ sku: 'a', available: 5, reserved: 1 }), reserved([line]));

  it('releases a reservation back to available (compensation), once', () => {
    const { events, state } = given().when({ type: 'ReleaseStock', orderId: O });
    expect(events).toEqual([{ type: 'StockReleased', data: { orderId: O, lines: [line] } }]);
    expect(state.products.get('a')).toMatchObject({ available: 5, reserved: 1 });
    expect(state.reservations.get(O)![0]!.status).toBe('RELEASED');
    expect(spec.given(state).when({ type: 'ReleaseStock', orderId: O }).events).toEqual([]);
  });

  it('sells a reservation: it leaves the warehouse, once', () => {
    const { events, state } = given().when({ type: 'SellStock', orderId: O });
    expect(events).toEqual([{ type: 'StockCommitted', data: { orderId: O, lines: [line] } }]);
    expect(state.products.get('a')).toMatchObject({ available: 3, reserved: 1 });
    expect(state.reservations.get(O)![0]!.status).toBe('COMMITTED');
    expect(spec.given(state).when({ type: 'ReleaseStock', orderId: O }).events).toEqual([]);
  });

  it('has nothing to release for an order it never reserved (stock was rejected)', () => {
    expect(spec.given(stock({ sku: 'a' })).when({ type: 'ReleaseStock', orderId: O }).events).toEqual([]);
  });

  it('releases or sells only lines still reserved', () => {
    expect(
      openLines([
        { sku: 'a', quantity: 1, priceCents: 5, status: 'RESERVED' },
        { sku: 'b', quantity: 1, priceCents: 5, status: 'RELEASED' },
        { sku: 'c', quantity: 1, priceCents: 5, status: 'COMMITTED' },
      ]),
    ).toEqual([{ sku: 'a', quantity: 1, priceCents: 5 }]);
  });
});

describe('a cancel seen before the reservation', () => {
  it('marks the order cancelled, so a later reserve holds nothing', () => {
    const state = markCancelled(stock({ sku: 'a', available: 5 }), 'o-late');
    expect(
      decide(state, { type: 'ReserveStock', orderId: 'o-late', customerId: 'c', items: [{ sku: 'a', quantity: 1 }] }),
    ).toEqual([]);
    expect(markCancelled(state, 'o-late')).toBe(state);
  });
});
