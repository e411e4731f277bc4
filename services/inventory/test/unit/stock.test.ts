import { applyRelease, applyReservation, applySale, decideReservation, mergeLines, openLines, type Product } from '../../src/domain/stock';

const O = '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11';
const catalog = (...ps: Partial<Product>[]) =>
  new Map(ps.map((p, i) => [p.sku ?? `sku-${i}`, { sku: `sku-${i}`, priceCents: 100, available: 10, reserved: 0, ...p } as Product]));
const reserve = (...items: [string, number][]) => ({ orderId: O, customerId: 'c1', items: items.map(([sku, quantity]) => ({ sku, quantity })) });

describe('reserve stock', () => {
  it('reserves every line at the current unit price and totals it', () => {
    expect(decideReservation(catalog({ sku: 'a', priceCents: 250 }, { sku: 'b', priceCents: 100 }), reserve(['b', 1], ['a', 2]))).toEqual({
      type: 'StockReserved',
      data: { orderId: O, customerId: 'c1', lines: [{ sku: 'a', quantity: 2, priceCents: 250 }, { sku: 'b', quantity: 1, priceCents: 100 }], totalCents: 600 },
    });
  });

  it('rejects when stock is short, naming the sku', () => {
    expect(decideReservation(catalog({ sku: 'a', available: 1 }), reserve(['a', 2]))).toEqual({
      type: 'StockRejected',
      data: { orderId: O, reason: 'OUT_OF_STOCK', sku: 'a' },
    });
  });

  it('counts repeated lines of one sku together', () => {
    expect(decideReservation(catalog({ sku: 'a', available: 3 }), reserve(['a', 2], ['a', 2])).type).toBe('StockRejected');
    expect(mergeLines([{ sku: 'b', quantity: 1 }, { sku: 'a', quantity: 2 }, { sku: 'b', quantity: 3 }])).toEqual([
      { sku: 'a', quantity: 2 },
      { sku: 'b', quantity: 4 },
    ]);
  });

  it('names an unknown product before a short one', () => {
    expect(decideReservation(catalog({ sku: 'a', available: 0 }), reserve(['a', 1], ['zz', 1]))).toEqual({
      type: 'StockRejected',
      data: { orderId: O, reason: 'UNKNOWN_PRODUCT', sku: 'zz' },
    });
  });

  it('reserves exactly what is available', () => {
    expect(decideReservation(catalog({ sku: 'a', available: 2 }), reserve(['a', 2])).type).toBe('StockReserved');
  });
});

describe('stock movements', () => {
  const p: Product = { sku: 'a', priceCents: 1, available: 5, reserved: 1 };
  it('moves reserved stock out of available, back on release, out of the warehouse on sale', () => {
    const r = applyReservation(p, 2);
    expect(r).toMatchObject({ available: 3, reserved: 3 });
    expect(applyRelease(r, 2)).toMatchObject({ available: 5, reserved: 1 });
    expect(applySale(r, 2)).toMatchObject({ available: 3, reserved: 1 });
  });
  it('refuses to reserve more than is available', () => {
    expect(() => applyReservation(p, 6)).toThrow('cannot reserve 6 of a');
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
