import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { queryWithEdges } from './transaction-edges';

// Any drizzle database or transaction on node-postgres (the read paths).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Db = PgDatabase<PgQueryResultHKT, any, any>;

/** A node-postgres connection inside a transaction (the write paths: hand-written, prepared statements). */
export type SqlClient = Pick<pg.ClientBase, 'query'>;

/**
 * Part of one statement: SQL text whose parameters are numbered from `first`, and their values. Statements are
 * assembled from parts so that a step costs one round trip; the text is the same for every call, so a named
 * (prepared) statement can carry it.
 */
export type SqlPart = { text: (first: number) => string; values: unknown[] };

/**
 * The last statement of an edged transaction: `query` takes it (one, whose result is not read), and it is sent with
 * COMMIT once the transaction's function has returned, so nothing the function does can fail after the commit.
 */
export type StatementSink = { query: (config: pg.QueryConfig) => Promise<unknown> };

/**
 * One transaction in as few round trips as its statements: BEGIN goes out with the first statement run through
 * `first`, and COMMIT with the statement given to `last`, each in one write (db/transaction-edges.ts). A transaction
 * of two statements (a consumer's batch: claim and load, then save) costs two round trips instead of four.
 *
 * - Statements on `first` after the first one go on their own.
 * - `last` takes at most one statement, and `first` takes none after it; it is sent when `fn` has returned, with
 *   COMMIT. Without one, COMMIT goes on its own; without any statement, nothing is sent.
 * - A failure before the last exchange rolls back as `withTransaction` does. A failure during it (the connection
 *   lost, a timeout) leaves the outcome unknown, as a failed COMMIT does: a consumer's batch is then redelivered
 *   and its inbox answers what was applied.
 */
export async function withEdgedTransaction<R>(
  pool: pg.Pool,
  fn: (first: SqlClient, last: StatementSink) => Promise<R>,
): Promise<R> {
  const client = await pool.connect();
  /** `begun`: BEGIN was sent (with the first statement, or with the last); `last`: the statement that goes with COMMIT. */
  const tx: { begun: boolean; last?: pg.QueryConfig } = { begun: false };
  let broken: Error | undefined;
  const first = {
    query: (...args: unknown[]) => {
      if (tx.last) throw new Error('a statement after the last one of a transaction');
      if (tx.begun) return (client.query as (...a: unknown[]) => unknown).apply(client, args);
      tx.begun = true;
      return queryWithEdges(client, statement(args[0]), { begin: true, commit: false });
    },
  };
  const last: StatementSink = {
    query: (config) => {
      if (tx.last) throw new Error('a transaction has one last statement');
      tx.last = statement(config);
      return Promise.resolve(undefined);
    },
  };
  try {
    const result = await fn(first as unknown as SqlClient, last);
    if (tx.last) {
      const begin = !tx.begun;
      tx.begun = true;
      await queryWithEdges(client, tx.last, { begin, commit: true });
    } else if (tx.begun) await client.query('COMMIT');
    return result;
  } catch (err) {
    if (tx.begun) broken = await rollBack(client);
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * What an edged exchange can carry: a query config with text, and neither a row limit (a portal kept open) nor an
 * empty text (no CommandComplete to count).
 */
function statement(config: unknown): pg.QueryConfig {
  const c = config as Partial<pg.QueryConfig> & { rows?: unknown };
  if (typeof c !== 'object' || c === null || typeof c.text !== 'string' || c.text.trim() === '')
    throw new TypeError('a statement of an edged transaction is a query config object with its text');
  if (c.rows !== undefined) throw new TypeError('a statement of an edged transaction reads all its rows at once');
  return c as pg.QueryConfig;
}

/** One transaction on one pooled connection; the connection is dropped, not reused, when it failed. */
export async function withTransaction<R>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<R>): Promise<R> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    broken = await rollBack(client);
    throw err;
  } finally {
    client.release(broken);
  }
}

/** ROLLBACK after a failure; answers the error when even that failed (the connection is then dropped, not reused). */
async function rollBack(client: pg.PoolClient): Promise<Error | undefined> {
  try {
    await client.query('ROLLBACK');
    return undefined;
  } catch (rollbackErr) {
    return rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
  }
}
