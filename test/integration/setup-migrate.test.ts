/** `npm run setup` and `npm run migrate` are safe to repeat: the second run changes nothing. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { DATABASE_OWNERS } from '@saga/common/contracts/service-names';
import { ADMIN_URL } from '../support/env';
import { startProcess } from '../support/process';

const id = `tsetup_${randomBytes(3).toString('hex')}`;
const names = {
  ORDER_DB_NAME: `${id}_orders`,
  INVENTORY_DB_NAME: `${id}_inventory`,
  PAYMENT_DB_NAME: `${id}_payment`,
  MONITOR_DB_NAME: `${id}_monitor`,
};
const dbs = Object.values(names);

async function run(entry: string) {
  const p = startProcess(entry, { ...names, PG_ADMIN_URL: ADMIN_URL });
  const { code } = await p.exited;
  return { code, output: p.output() };
}

async function query<T extends pg.QueryResultRow>(db: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${db}`;
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Everything setup and migrate may touch: roles, database and schema privileges, tables and their grants, migrations. */
async function snapshot() {
  const roles = await query(
    'postgres',
    `SELECT rolname, rolsuper, rolreplication, rolcanlogin, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname IN ('order_svc','inventory_svc','payment_svc','monitor_svc','relay') ORDER BY 1`,
  );
  const databases = await query(
    'postgres',
    'SELECT datname, datacl::text FROM pg_database WHERE datname = ANY($1) ORDER BY 1',
    [dbs],
  );
  const perDb: Record<string, unknown> = {};
  for (const [i, db] of dbs.entries()) {
    perDb[db] = {
      schema: await query(db, "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'"),
      tables: await query(
        db,
        "SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1",
      ),
      publication: await query(db, 'SELECT pubname, pubinsert, pubupdate, pubdelete FROM pg_publication'),
      migrations: await query(
        db,
        `SELECT id, hash, created_at FROM drizzle.__drizzle_migrations_${DATABASE_OWNERS[i]} ORDER BY id`,
      ),
    };
  }
  return { roles, databases, perDb };
}

afterAll(async () => {
  for (const db of dbs) await query('postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
});

describe('setup and migrate', () => {
  it('run twice in a row succeed and the second run changes nothing', async () => {
    const setup1 = await run('scripts/setup.ts');
    expect(setup1.code).toBe(0);
    expect(setup1.output).toContain(`created database ${names.ORDER_DB_NAME}`);
    const migrate1 = await run('scripts/migrate.ts');
    expect(migrate1.code).toBe(0);
    // Every migration of the order service's journal, whatever their number.
    const orderMigrations = (
      JSON.parse(readFileSync(path.resolve(__dirname, '../../migrations/order/meta/_journal.json'), 'utf8')) as {
        entries: unknown[];
      }
    ).entries.length;
    expect(orderMigrations).toBeGreaterThan(7);
    expect(migrate1.output).toMatch(new RegExp(`order \\(\\w+\\): ${orderMigrations} applied`));
    const first = await snapshot();
    expect(first.roles).toHaveLength(5);
    expect(first.perDb[names.ORDER_DB_NAME]).toMatchObject({
      publication: [{ pubname: 'outbox_pub', pubinsert: true, pubupdate: false, pubdelete: false }],
    });

    const setup2 = await run('scripts/setup.ts');
    expect(setup2.code).toBe(0);
    expect(setup2.output).not.toContain('created');
    expect(setup2.output).toMatch(/wal_level=logical, .* already/);
    const migrate2 = await run('scripts/migrate.ts');
    expect(migrate2.code).toBe(0);
    expect(migrate2.output).toMatch(new RegExp(`order \\(\\w+\\): 0 applied, ${orderMigrations} in all`));
    expect(await snapshot()).toEqual(first);
  });

  it('refuses a bad configuration naming the variable', async () => {
    const p = startProcess('scripts/setup.ts', { ORDER_DB_NAME: 'Bad-Name' });
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.output()).toContain('ORDER_DB_NAME');
  });
});
