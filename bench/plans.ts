/**
 * What DB_PLAN_CACHE_MODE=force_custom_plan (packages/common/src/db/pg.ts) buys and costs against `auto`, PostgreSQL's
 * default: the order consumer's own statements (claim the inbox and lock and read the orders, then update them and
 * add history) on one connection planning each run and on one with PostgreSQL's default plan cache, whose
 * statements were first run while the orders table was small (a fresh deployment). Then the table grows and both
 * run the same batches, alternating; last, after ANALYZE (fresh statistics invalidate the cached plan), which shows
 * the price of planning each time. Every batch is rolled back, so the table keeps its size.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '@saga/common/runtime/logger';
import { inboxClaim } from '@saga/common/db/inbox';
import { outboxInsert } from '@saga/common/db/outbox';
import { createPool, planCacheOptions } from '@saga/common/db/pg';
import { loadOrders, saveOrders } from '../services/order/src/db/order-repository';
import type { Order } from '../services/order/src/domain/order';
import type { TestEnv } from '../test/support/env';

/** `generic`: how the `auto` connection's two statements were planned in this run (pg_prepared_statements), to show which plan it ran. */
export type PlanRun = {
  orders: number;
  analyzed: boolean;
  customMs: number;
  genericMs: number;
  generic: { genericPlans: number; customPlans: number };
};

const BATCH = 20;

export async function measurePlans(
  env: TestEnv,
  sizes: number[],
  batches: number,
  log: (m: string) => void,
): Promise<PlanRun[]> {
  const url = env.adminUrl('order');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const quiet = createLogger('bench', 'silent');
  const pools = {
    custom: createPool(url, quiet, { options: planCacheOptions('force_custom_plan') }),
    generic: createPool(url, quiet, { options: planCacheOptions('auto') }),
  };
  const clients: Partial<Record<keyof typeof pools, pg.PoolClient>> = {};
  try {
    clients.custom = await pools.custom.connect();
    clients.generic = await pools.generic.connect();
    // Statistics change only when this section says so (ANALYZE), wherever autovacuum runs.
    await admin.query(
      'ALTER TABLE orders SET (autovacuum_enabled = off); ALTER TABLE order_items SET (autovacuum_enabled = off)',
    );
    return await measure(admin, clients as Record<keyof typeof pools, pg.PoolClient>, sizes, batches, log);
  } finally {
    for (const c of Object.values(clients)) c.release();
    await pools.custom.end();
    await pools.generic.end();
    try {
      await admin.query(
        "DELETE FROM order_items WHERE sku = 'bench-sku'; DELETE FROM orders WHERE customer_id LIKE 'bench-%'",
      );
      await admin.query(
        'ALTER TABLE orders RESET (autovacuum_enabled); ALTER TABLE order_items RESET (autovacuum_enabled)',
      );
    } finally {
      await admin.end();
    }
  }
}

async function measure(
  admin: pg.Client,
  clients: Record<'custom' | 'generic', pg.PoolClient>,
  sizes: number[],
  batches: number,
  log: (m: string) => void,
): Promise<PlanRun[]> {
  let size = 0;
  const grow = async (to: number) => {
    await admin.query(
      `WITH o AS (INSERT INTO orders (id, customer_id, status) SELECT gen_random_uuid(), 'bench-' || g, 'PENDING' FROM generate_series(1, $1::int) g RETURNING id)
       INSERT INTO order_items (order_id, line_no, sku, quantity) SELECT id, 1, 'bench-sku', 1 FROM o`,
      [to - size],
    );
    size = to;
  };
  const someIds = async () =>
    (await admin.query<{ id: string }>(`SELECT id FROM orders ORDER BY random() LIMIT ${BATCH}`)).rows.map((r) => r.id);
  /** One consumer batch as the order service runs it, rolled back. */
  const batch = async (c: pg.PoolClient, ids: string[]) => {
    await c.query('BEGIN');
    try {
      const { orders } = await loadOrders(
        c,
        inboxClaim(
          'bench.plans',
          ids.map(() => ({ id: randomUUID(), type: 'PaymentAuthorized' })),
        ),
        ids,
      );
      const after = new Map<string, Order>([...orders].map(([id, o]) => [id, { ...o, status: 'CONFIRMED' }]));
      const history = ids.map((orderId) => ({ orderId, type: 'OrderConfirmed' }));
      await saveOrders(
        c,
        { orders, history: [] },
        { orders: after, history } as Parameters<typeof saveOrders>[2],
        outboxInsert([]),
      );
    } finally {
      await c.query('ROLLBACK');
    }
  };
  const out: PlanRun[] = [];
  const plansOf = async (c: pg.PoolClient) => {
    const { rows } = await c.query<{ g: string; c: string }>(
      "SELECT sum(generic_plans) AS g, sum(custom_plans) AS c FROM pg_prepared_statements WHERE name IN ('order.load', 'order.save')",
    );
    return { genericPlans: Number(rows[0]?.g ?? 0), customPlans: Number(rows[0]?.c ?? 0) };
  };
  await grow(20);
  // Past PostgreSQL's five custom plans, so that the default plan cache settles on its generic plan.
  for (let i = 0; i < 8; i++) for (const c of Object.values(clients)) await batch(c, await someIds());
  for (const [i, to] of [...sizes, sizes[sizes.length - 1]!].entries()) {
    const analyzed = i === sizes.length;
    if (analyzed) await admin.query('ANALYZE orders; ANALYZE order_items');
    else await grow(to);
    const ms = { custom: 0, generic: 0 };
    const before = await plansOf(clients.generic);
    for (let b = 0; b < batches; b++) {
      const ids = await someIds();
      for (const name of (b % 2 ? ['custom', 'generic'] : ['generic', 'custom']) as (keyof typeof clients)[]) {
        const t = process.hrtime.bigint();
        await batch(clients[name], ids);
        ms[name] += Number(process.hrtime.bigint() - t) / 1e6;
      }
    }
    const now = await plansOf(clients.generic);
    const generic = {
      genericPlans: now.genericPlans - before.genericPlans,
      customPlans: now.customPlans - before.customPlans,
    };
    const run = { orders: size, analyzed, customMs: ms.custom / batches, genericMs: ms.generic / batches, generic };
    log(
      `plans: ${size} orders${analyzed ? ' (analyzed)' : ''}: ${run.customMs.toFixed(2)} ms per batch planned each time, ${run.genericMs.toFixed(2)} ms with the default plan cache (its statements ran ${run.generic.genericPlans} generic and ${run.generic.customPlans} custom plans)`,
    );
    out.push(run);
  }
  return out;
}
