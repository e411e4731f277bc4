import { randomUUID } from 'node:crypto';
import { devAuthHeader } from '@saga/common/http/dev-token';
import { adminUrlOf, http } from './stack';
import { waitUntil } from './wait';

export type OrderView = {
  orderId: string;
  customerId: string;
  status: 'PENDING' | 'CONFIRMED' | 'CANCELLED';
  reason: string | null;
  totalCents: number | null;
  items: { sku: string; quantity: number; priceCents: number | null }[];
  history: { type: string; at: string; reason?: string }[];
};

export type Urls = () => { order: string; inventory: string; payment: string };

export const uniq = (p: string) => `${p}-${randomUUID().slice(0, 8)}`;

/** Headers of a request to the order API as `customerId` (a token of the development issuer). */
export const as = (customerId: string, headers: Record<string, string> = {}) => ({
  ...devAuthHeader(customerId),
  ...headers,
});

/**
 * Drives the saga over HTTP and remembers what it set up and placed, to check the invariants at the end:
 * initial stock = available + confirmed quantities (nothing left reserved);
 * initial balance = balance + confirmed totals; no order stuck PENDING; no event applied twice.
 */
export function sagaClient(urls: Urls) {
  const initialStock = new Map<string, number>();
  const initialBalance = new Map<string, number>();
  const placed: string[] = [];
  /** Who placed each order: reads of the order API are the customer's own. */
  const ownerOf = new Map<string, string>();
  /**
   * One token per customer for the client's life, as a real client keeps its session's token: a token minted per
   * request would make every request verify a new signature, which the order service's memory of verified tokens
   * spares real clients (and a profile of the service would show that cost).
   */
  const tokens = new Map<string, Record<string, string>>();
  const asCustomer = (customerId: string, headers: Record<string, string> = {}) => {
    let auth = tokens.get(customerId);
    if (!auth) tokens.set(customerId, (auth = as(customerId)));
    return { ...auth, ...headers };
  };

  const client = {
    placed,
    /** Headers to read `orderId` as the customer who placed it. */
    asOwnerOf: (orderId: string) => asCustomer(ownerOf.get(orderId) ?? 'nobody'),
    /** An order placed by another client (the bench's own poster): checked at the end like the client's own. */
    recordPlaced(orderId: string, customerId: string) {
      if (!placed.includes(orderId)) placed.push(orderId);
      ownerOf.set(orderId, customerId);
    },
    async product(stock: number, priceCents: number, prefix = 'sku') {
      const sku = uniq(prefix);
      const r = await http('PUT', `${adminUrlOf(urls().inventory)}/products/${sku}`, {
        name: `Product ${sku}`,
        priceCents,
        stock,
      });
      if (r.status !== 200) throw new Error(`PUT product: ${r.status}`);
      initialStock.set(sku, stock);
      return sku;
    },
    async account(balanceCents: number) {
      const customerId = uniq('cust');
      const r = await http('PUT', `${adminUrlOf(urls().payment)}/accounts/${customerId}`, { balanceCents });
      if (r.status !== 200) throw new Error(`PUT account: ${r.status}`);
      initialBalance.set(customerId, balanceCents);
      return customerId;
    },
    /** Place an order; answers its id (expects 202). */
    async place(customerId: string, items: { sku: string; quantity: number }[], headers: Record<string, string> = {}) {
      const r = await http<{ orderId: string; status: string }>(
        'POST',
        `${urls().order}/orders`,
        { customerId, items },
        asCustomer(customerId, headers),
      );
      if (r.status !== 202 || r.body.status === undefined)
        throw new Error(`POST /orders: ${r.status} ${JSON.stringify(r.body)}`);
      if (!placed.includes(r.body.orderId)) placed.push(r.body.orderId);
      ownerOf.set(r.body.orderId, customerId);
      return r.body.orderId;
    },
    /** Place, retrying while the service answers 503 or cannot be reached (a fault is being injected). */
    async placeEventually(customerId: string, items: { sku: string; quantity: number }[], timeoutMs = 60_000) {
      const key = uniq('idem');
      return waitUntil(() => client.place(customerId, items, { 'Idempotency-Key': key }), {
        timeoutMs,
        intervalMs: 200,
        message: 'order accepted',
      });
    },
    /**
     * A burst: `n` orders of one product from `workers` clients at once, every tenth by `poor` (quantity 2, so some
     * are declined), each placed with placeEventually. `placed()` counts those accepted so far.
     */
    burst(n: number, sku: string, rich: string, poor: string, workers = 8) {
      let placedSoFar = 0;
      const queue = Array.from({ length: n }, (_, i) => (i % 10 === 9 ? poor : rich));
      const done = Promise.all(
        Array.from({ length: workers }, async () => {
          for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
            await client.placeEventually(c, [{ sku, quantity: c === poor ? 2 : 1 }]);
            placedSoFar++;
          }
        }),
      ).then(() => undefined);
      return { placed: () => placedSoFar, done };
    },
    async finalOrder(orderId: string, timeoutMs = 30_000): Promise<OrderView> {
      return waitUntil(
        async () => {
          const r = await http<OrderView>(
            'GET',
            `${urls().order}/orders/${orderId}`,
            undefined,
            client.asOwnerOf(orderId),
          );
          return r.status === 200 && r.body.status !== 'PENDING' ? r.body : undefined;
        },
        { timeoutMs, message: `order ${orderId} final` },
      );
    },
    getProduct: async (sku: string) =>
      (await http<{ available: number; reserved: number }>('GET', `${urls().inventory}/products/${sku}`)).body,
    getBalance: async (c: string) =>
      (await http<{ balanceCents: number }>('GET', `${adminUrlOf(urls().payment)}/accounts/${c}`)).body.balanceCents,

    /** Throws unless every order placed so far is final and the invariants hold. Answers the final orders. */
    async expectInvariants(timeoutMs = 60_000): Promise<OrderView[]> {
      const views: OrderView[] = [];
      for (const id of placed) views.push(await client.finalOrder(id, timeoutMs));
      const soldQty = new Map<string, number>();
      const spent = new Map<string, number>();
      for (const v of views) {
        const types = v.history.map((h) => h.type);
        if (new Set(types).size !== types.length)
          throw new Error(`order ${v.orderId} applied an event twice: ${types.join(', ')}`);
        if (v.status !== 'CONFIRMED') continue;
        for (const i of v.items) soldQty.set(i.sku, (soldQty.get(i.sku) ?? 0) + i.quantity);
        spent.set(v.customerId, (spent.get(v.customerId) ?? 0) + (v.totalCents ?? 0));
      }
      for (const [sku, initial] of initialStock) {
        // Reservations settle (sold or released) asynchronously after the order's final state.
        const p = await waitUntil(
          async () => {
            const p = await client.getProduct(sku);
            return p.reserved === 0 ? p : undefined;
          },
          { timeoutMs, message: `${sku} has nothing reserved` },
        );
        const total = p.available + (soldQty.get(sku) ?? 0);
        if (total !== initial)
          throw new Error(
            `stock of ${sku}: available ${p.available} + sold ${soldQty.get(sku) ?? 0} != initial ${initial}`,
          );
      }
      for (const [c, initial] of initialBalance) {
        const balance = await client.getBalance(c);
        if (balance + (spent.get(c) ?? 0) !== initial)
          throw new Error(`balance of ${c}: ${balance} + spent ${spent.get(c) ?? 0} != initial ${initial}`);
      }
      return views;
    },
  };
  return client;
}
