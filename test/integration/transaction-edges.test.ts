/**
 * withEdgedTransaction (packages/common/src/db/sql.ts): BEGIN travels with a transaction's first statement and COMMIT
 * with its last, against the real server. Exchanges are counted as the ReadyForQuery messages the client receives
 * (one per Sync or simple query): the consumers' transaction of two statements used to take four.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withEdgedTransaction, withTransaction } from '@saga/common/db/sql';
import { urlForDatabase } from '../../scripts/lib/admin';
import { ADMIN_URL, adminSql as admin } from '../support/env';

const db = `tedges_${randomBytes(3).toString('hex')}`;
let pool: pg.Pool;
let exchanges = 0;

const insert = (name: string, v: number, tag = 'x') => ({
  name,
  text: `INSERT INTO t (v, tag) VALUES ($1, $2)`,
  values: [v, tag],
});
const count = async () => Number((await pool.query('SELECT count(*) AS n FROM t')).rows[0].n);

beforeAll(async () => {
  await admin(`CREATE DATABASE ${db}`);
  pool = new pg.Pool({ connectionString: urlForDatabase(ADMIN_URL, db), max: 1, idleTimeoutMillis: 0 });
  pool.on('connect', (c) => {
    (c as unknown as { connection: { on: (e: string, f: () => void) => void } }).connection.on(
      'readyForQuery',
      () => void exchanges++,
    );
  });
  await pool.query(
    'CREATE TABLE t (v int PRIMARY KEY, tag text NOT NULL CHECK (tag <> $$bad$$), tx text NOT NULL DEFAULT txid_current()::text)',
  );
});
afterAll(async () => {
  await pool.end();
  await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
});
beforeEach(async () => {
  await pool.query('TRUNCATE t');
});

/** Runs `fn` and answers how many exchanges with the server it took. */
async function exchangesOf(fn: () => Promise<unknown>): Promise<number> {
  const before = exchanges;
  await fn();
  return exchanges - before;
}

describe('a transaction whose BEGIN and COMMIT travel with its statements', () => {
  it('runs both statements in one transaction, committed, in two exchanges once the statements are parsed', async () => {
    let v = 0;
    const tx = () =>
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', ++v));
        await last.query(insert('edges.b', ++v));
      });
    // The first run on a connection parses the named statements, each exchange on its own.
    expect(await exchangesOf(tx)).toBe(4);
    expect(await exchangesOf(tx)).toBe(2);
    const rows = (await pool.query<{ v: number; tx: string }>('SELECT v, tx FROM t ORDER BY v')).rows;
    expect(rows.map((r) => r.v)).toEqual([1, 2, 3, 4]);
    expect(rows[2]!.tx).toBe(rows[3]!.tx);
    expect(rows[1]!.tx).not.toBe(rows[2]!.tx);
    // The same transaction sent a statement at a time: four exchanges.
    expect(
      await exchangesOf(() =>
        withTransaction(pool, async (c) => {
          await c.query(insert('edges.a', ++v));
          await c.query(insert('edges.b', ++v));
        }),
      ),
    ).toBe(4);
  });

  it('rolls back everything when the last statement fails, and the connection serves the next transaction', async () => {
    const run = (tag: string) =>
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 10));
        await last.query(insert('edges.b', 11, tag));
      });
    await run('ok');
    await pool.query('TRUNCATE t');
    await expect(run('bad')).rejects.toMatchObject({ code: '23514' });
    expect(await count()).toBe(0);
    await run('ok');
    expect(await count()).toBe(2);
  });

  it('rolls back when the first statement fails; nothing after it runs', async () => {
    await pool.query('INSERT INTO t (v, tag) VALUES (20, $$x$$)');
    let reached = false;
    await expect(
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 20)); // a duplicate key
        reached = true;
        await last.query(insert('edges.b', 21));
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(reached).toBe(false);
    expect(await count()).toBe(1);
  });

  it('refuses a statement after the last one, and commits nothing of that transaction', async () => {
    await expect(
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 30));
        await last.query(insert('edges.b', 31));
        await first.query(insert('edges.c', 32));
      }),
    ).rejects.toThrow(/after the last one/);
    await expect(
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 33));
        await last.query(insert('edges.b', 34));
        await last.query(insert('edges.c', 35));
      }),
    ).rejects.toThrow(/one last statement/);
    expect(await count()).toBe(0);
  });

  it('sends the last statement only once the work after it is done: a failure there commits nothing', async () => {
    await expect(
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 36));
        await last.query(insert('edges.b', 37));
        throw new Error('the work after the save failed');
      }),
    ).rejects.toThrow('the work after the save failed');
    expect(await count()).toBe(0);
  });

  it('begins with the last statement when it is the only one', async () => {
    await withEdgedTransaction(pool, async (_first, last) => {
      await last.query(insert('edges.b', 38));
    });
    expect(
      await exchangesOf(() => withEdgedTransaction(pool, (_first, last) => last.query(insert('edges.b', 39)))),
    ).toBe(1);
    expect(await count()).toBe(2);
  });

  it('commits on its own when no statement went through the last client, and sends nothing for no statement', async () => {
    expect(
      await exchangesOf(() =>
        withEdgedTransaction(pool, async (first) => {
          await first.query(insert('edges.a', 40));
          await first.query(insert('edges.b', 41));
        }),
      ),
    ).toBe(3);
    expect(await count()).toBe(2);
    expect(await exchangesOf(() => withEdgedTransaction(pool, async () => 'nothing'))).toBe(0);
  });

  it('parses a named statement again after its first Parse failed', async () => {
    const broken = { name: 'edges.late', text: 'INSERT INTO late (v) VALUES ($1)', values: [1] };
    const run = () =>
      withEdgedTransaction(pool, async (first, last) => {
        await first.query(insert('edges.a', 50 + Math.floor(Math.random() * 1e6)));
        await last.query(broken);
      });
    await expect(run()).rejects.toMatchObject({ code: '42P01' }); // no such table yet
    await pool.query('CREATE TABLE late (v int)');
    try {
      await run();
      await run();
      expect(Number((await pool.query('SELECT count(*) AS n FROM late')).rows[0].n)).toBe(2);
    } finally {
      await pool.query('DROP TABLE late');
    }
  });
});
