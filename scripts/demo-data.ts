/** The demo catalogue (10 of each product, as in the original demo) and accounts. */
export const DEMO_PRODUCTS = [
  { sku: 'mechanical-keyboard', name: 'Mechanical keyboard', priceCents: 8_900, stock: 10 },
  { sku: 'wireless-mouse', name: 'Wireless mouse', priceCents: 2_500, stock: 10 },
  { sku: 'usb-c-hub', name: 'USB-C hub', priceCents: 3_900, stock: 10 },
  { sku: '4k-monitor', name: '4K monitor', priceCents: 45_000, stock: 10 },
  { sku: 'laptop-stand', name: 'Laptop stand', priceCents: 4_500, stock: 10 },
];
export const DEMO_ACCOUNTS = [
  { customerId: 'alice', balanceCents: 500_000 },
  { customerId: 'bob', balanceCents: 2_000 },
];

export const urls = (env: Record<string, string | undefined> = process.env) => ({
  order: env.ORDER_URL ?? 'http://127.0.0.1:8000',
  inventory: env.INVENTORY_URL ?? 'http://127.0.0.1:8001',
  payment: env.PAYMENT_URL ?? 'http://127.0.0.1:8002',
});

async function put(url: string, body: unknown) {
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`PUT ${url}: ${res.status} ${await res.text()}`);
}

/** Add each demo product and account that does not exist yet (existing ones are left as they are). Answers how many were added. */
export async function seedIfEmpty(u = urls()): Promise<number> {
  let added = 0;
  for (const p of DEMO_PRODUCTS) {
    if ((await fetch(`${u.inventory}/products/${p.sku}`)).status !== 404) continue;
    await put(`${u.inventory}/products/${p.sku}`, { name: p.name, priceCents: p.priceCents, stock: p.stock });
    added++;
  }
  for (const a of DEMO_ACCOUNTS) {
    if ((await fetch(`${u.payment}/accounts/${a.customerId}`)).status !== 404) continue;
    await put(`${u.payment}/accounts/${a.customerId}`, { balanceCents: a.balanceCents });
    added++;
  }
  return added;
}
