import { z } from 'zod';
import { parseEnv } from '@saga/common/runtime/config';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';

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

/**
 * Where each service answers: `<SERVICE>_URL`, by default the local port its own config defaults to (8000 for the
 * first service of SERVICES, then 8001, ...).
 */
export const SeedEnv = z.object({
  ...(Object.fromEntries(
    SERVICES.map((s, i) => [
      `${s.toUpperCase()}_URL`,
      z
        .string()
        .url()
        .default(`http://127.0.0.1:${8000 + i}`),
    ]),
  ) as Record<`${Uppercase<ServiceName>}_URL`, z.ZodDefault<z.ZodString>>),
  /** The admin listeners of inventory and payment (ADMIN_PORT): the catalogue and the accounts are set there. */
  INVENTORY_ADMIN_URL: z.string().url().default('http://127.0.0.1:8101'),
  PAYMENT_ADMIN_URL: z.string().url().default('http://127.0.0.1:8102'),
  /** How long the seed waits for every service to be ready. */
  SEED_TIMEOUT_MS: z.coerce.number().int().positive().default(120_000),
});
export const loadSeedConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(SeedEnv, env);

export type Urls = Record<ServiceName, string> & { inventoryAdmin: string; paymentAdmin: string };

export const urls = (env: Record<string, string | undefined> = process.env): Urls => {
  const c = loadSeedConfig(env);
  return {
    ...(Object.fromEntries(SERVICES.map((s) => [s, c[`${s.toUpperCase() as Uppercase<ServiceName>}_URL`]])) as Record<
      ServiceName,
      string
    >),
    inventoryAdmin: c.INVENTORY_ADMIN_URL,
    paymentAdmin: c.PAYMENT_ADMIN_URL,
  };
};

/** Resolves when `url`/readyz answers 2xx; polls until `timeoutMs`. */
export async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not become ready within ${timeoutMs} ms`);
}

async function put(url: string, body: unknown) {
  const res = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`PUT ${url}: ${res.status} ${await res.text()}`);
}

/** Add each demo product and account that does not exist yet (existing ones are left as they are). Answers how many were added. */
export async function seedIfEmpty(u = urls()): Promise<number> {
  let added = 0;
  for (const p of DEMO_PRODUCTS) {
    if ((await fetch(`${u.inventoryAdmin}/products/${p.sku}`)).status !== 404) continue;
    await put(`${u.inventoryAdmin}/products/${p.sku}`, { name: p.name, priceCents: p.priceCents, stock: p.stock });
    added++;
  }
  for (const a of DEMO_ACCOUNTS) {
    if ((await fetch(`${u.paymentAdmin}/accounts/${a.customerId}`)).status !== 404) continue;
    await put(`${u.paymentAdmin}/accounts/${a.customerId}`, { balanceCents: a.balanceCents });
    added++;
  }
  return added;
}
