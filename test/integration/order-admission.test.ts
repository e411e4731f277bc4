/**
 * Admission by the wait the saga would give a new order, against real PostgreSQL and RabbitMQ: the order service alone, in an
 * environment of its own (the rule reads the oldest orders in progress, which other tests' orders would be). Orders
 * stay PENDING unless the test publishes the event that cancels them.
 */
import pg from 'pg';
import { publishEvent } from '../support/amqp';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { killAll } from '../support/process';
import { as, uniq } from '../support/saga';
import { startService, type ServiceProc } from '../support/stack';
import { waitUntil } from '../support/wait';

/** The service's bound on the saga's wait here: short, so that the test's orders pass it in a moment. */
const MAX_WAIT_MS = 300;
/** Orders looked past at the old end of the backlog (STUCK_ALLOWANCE in the service). */
const STUCK_ALLOWANCE = 10;

let env: TestEnv;
let shop: ServiceProc;
let admin: pg.Client;

beforeAll(async () => {
  env = await createTestEnv('oadm');
  shop = await startService(env, 'order', { ORDER_ADMISSION_MAX_WAIT_MS: String(MAX_WAIT_MS) });
  admin = new pg.Client({ connectionString: env.adminUrl('order') });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await shop?.proc.kill('SIGTERM');
  await killAll();
  await env?.close();
});

const customer = uniq('cust');
async function post() {
  const res = await fetch(`${shop.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...as(customer) },
    body: JSON.stringify({ items: [{ sku: 'sku-1', quantity: 1 }] }),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as { orderId?: string; type?: string },
  };
}
const cancel = (orderId: string) =>
  publishEvent(env.rabbitUrl, env.exchange, 'StockRejected', 'inventory', {
    orderId,
    reason: 'OUT_OF_STOCK',
    sku: 'sku-1',
  });
/** Orders in progress, oldest first, as the service orders them. */
const pendingOldestFirst = async () =>
  (
    await admin.query<{ id: string }>(`SELECT id FROM orders WHERE status = 'PENDING' ORDER BY created_at, id`)
  ).rows.map((r) => r.id);
const refusedForWait = () => metricValue(shop.adminUrl, 'order_admission_refused_total', { reason: 'wait' });

describe('admission by the wait the saga would give a new order', () => {
  it('keeps taking orders while the oldest do not move, refuses them while the saga moves too slowly for the wait bound, and takes them again when it has caught up', async () => {
    // A backlog whose oldest orders do not move (nothing consumes OrderPlaced here, as when inventory is down).
    for (let i = 0; i < STUCK_ALLOWANCE + 4; i++) expect((await post()).status).toBe(202);
    await waitUntil(
      async () =>
        (
          await admin.query(
            `SELECT 1 FROM orders WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1) OFFSET $2`,
            [(2 * MAX_WAIT_MS) / 1000, STUCK_ALLOWANCE],
          )
        ).rowCount! > 0,
      { timeoutMs: 10_000, intervalMs: 50, message: 'the backlog older than the wait bound' },
    );
    // Stalled, not slow: orders keep being taken over several reads of the backlog (one per 200 ms at most).
    const until = Date.now() + 1000;
    while (Date.now() < until) expect((await post()).status).toBe(202);
    expect(await metricValue(shop.adminUrl, 'order_admission_wait_seconds')).toBe(0);

    // The saga moves, slowly: the oldest orders finish one after another (about 30 a second, where they were placed
    // faster), while new ones keep coming. Once it has moved for a second, an order accepted now would wait longer
    // than the bound.
    const finishing = new Set<string>();
    let moving = true;
    const finisher = (async () => {
      while (moving) {
        const next = (await pendingOldestFirst()).find((id) => !finishing.has(id));
        if (!next) break;
        finishing.add(next);
        await cancel(next);
      }
    })();
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    try {
      await waitUntil(
        async () => {
          const r = await post();
          if (r.status !== 202) refused = r;
          return refused !== undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50, message: 'a POST refused for the wait' },
      );
    } finally {
      moving = false;
      await finisher;
    }
    expect(refused!.status).toBe(503);
    expect(refused!.body.type).toBe('urn:saga:problem:overloaded');
    expect(Number(refused!.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await refusedForWait()).toBeGreaterThanOrEqual(1);
    expect(await metricValue(shop.adminUrl, 'order_admission_wait_seconds')).toBeGreaterThanOrEqual(MAX_WAIT_MS / 1000);

    // Every order in progress finishes: the saga has caught up, and orders are taken again.
    for (const id of await pendingOldestFirst()) if (!finishing.has(id)) await cancel(id);
    await waitUntil(async () => (await pendingOldestFirst()).length === 0, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: 'every order finished',
    });
    await waitUntil(async () => (await post()).status === 202, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: 'a POST taken after the saga caught up',
    });
  });
});
