/**
 * DB_PLAN_CACHE_MODE (packages/common/src/db/pg.ts, planCacheOptions). The write paths are named statements that join
 * an array of keys to a table. With PostgreSQL's default plan cache (`auto`) a plan made while the table was small
 * stays until its statistics change, and without ANALYZE (autovacuum off, as on this machine) every batch then reads
 * the whole table; `force_custom_plan` plans each run for the table's size. The plans are read from auto_explain,
 * sent to the client as notices.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '@saga/common/runtime/logger';
import { createPool, planCacheOptions } from '@saga/common/db/pg';
import { urlForDatabase } from '../../scripts/lib/admin';
import { ADMIN_URL, adminSql as admin } from '../support/env';

const db = `tplans_${randomBytes(3).toString('hex')}`;
const url = urlForDatabase(ADMIN_URL, db);
const log = createLogger('test', 'silent');

/**
 * Runs the same named statement (as the repositories do) on one connection while the table is small, then after it
 * grew, then after ANALYZE; answers the plan cache mode and the scan auto_explain reports on the table for the run
 * after growth and the run after ANALYZE, e.g. `auto: sequential, then index`.
 */
async function scansAsTheTableGrows(pool: pg.Pool): Promise<string> {
  const c = await pool.connect();
  const plans: string[] = [];
  c.on('notice', (n) => plans.push(n.message ?? ''));
  try {
    const mode = (await c.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode')).rows[0]!.plan_cache_mode;
    await c.query("LOAD 'auto_explain'");
    await c.query(
      "SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = 'notice'; SET client_min_messages = 'notice'",
    );
    const run = (ids: string[]) =>
      c.query({
        name: 'grow.update',
        text: 'UPDATE grows g SET n = g.n + 1 FROM unnest($1::uuid[]) AS v(id) WHERE g.id = v.id',
        values: [ids],
      });
    const some = async () =>
      (await c.query<{ id: string }>('SELECT id FROM grows ORDER BY random() LIMIT 5')).rows.map((r) => r.id);
    const scan = async () => {
      plans.length = 0;
      await run(await some());
      const plan = plans.find((p) => p.includes('grows g'));
      if (!plan) throw new Error(`no plan of the update among the notices:\n${plans.join('\n')}`);
      return /Index Scan|Index Only Scan/.test(plan) ? 'index' : /Seq Scan on grows/.test(plan) ? 'sequential' : plan;
    };
    for (let i = 0; i < 8; i++) await run(await some());
    await c.query('INSERT INTO grows (id, n) SELECT gen_random_uuid(), 0 FROM generate_series(1, 50000)');
    const afterGrowth = await scan();
    // What autovacuum runs as a table grows: new statistics invalidate the cached plan.
    await c.query('ANALYZE grows');
    return `${mode}: ${afterGrowth}, then ${await scan()}`;
  } finally {
    c.release(true);
  }
}

beforeAll(async () => {
  await admin(`CREATE DATABASE "${db}"`);
});
beforeEach(async () => {
  // As wide as an order row (the planner sizes a table it never analyzed from its column types); statistics change
  // only when the test says so.
  await admin(
    `DROP TABLE IF EXISTS grows;
     CREATE TABLE grows (id uuid PRIMARY KEY, n int NOT NULL, customer text, status text, reason text, key text, hash text, at timestamptz DEFAULT now())
       WITH (autovacuum_enabled = off);
     INSERT INTO grows (id, n) SELECT gen_random_uuid(), 0 FROM generate_series(1, 20)`,
    url,
  );
});
afterAll(async () => {
  await admin(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
});

describe('statement plans on a table that grows', () => {
  it('use the primary key once the table is large with DB_PLAN_CACHE_MODE=force_custom_plan', async () => {
    const pool = createPool(url, log, { options: planCacheOptions('force_custom_plan') });
    try {
      expect(await scansAsTheTableGrows(pool)).toBe('force_custom_plan: index, then index');
    } finally {
      await pool.end();
    }
  });

  it('keep the plan of the small table with DB_PLAN_CACHE_MODE=auto until statistics change, then use the primary key', async () => {
    const pool = createPool(url, log, { options: planCacheOptions('auto') });
    try {
      expect(await scansAsTheTableGrows(pool)).toBe('auto: sequential, then index');
    } finally {
      await pool.end();
    }
  });
});
