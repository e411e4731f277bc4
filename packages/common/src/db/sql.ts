import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type pg from 'pg';

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
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    throw err;
  } finally {
    client.release(broken);
  }
}
