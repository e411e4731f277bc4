import pg from 'pg';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from './logger';

/**
 * The errors behind `err`: itself and its `cause` chain. drizzle wraps driver errors (DrizzleQueryError with the
 * pg error as `cause`), so a check on the outer error alone would miss every SQLSTATE.
 */
export function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err; e && typeof e === 'object' && out.length < 10; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

/** True when `err` (or its cause) is a PostgreSQL error with one of the given SQLSTATE codes (never branch on message text). */
export function isPgError(err: unknown, ...codes: string[]): boolean {
  return causes(err).some((e) => hasPgCode(e, codes));
}

/** The SQLSTATE of `err` or of its cause, if any. */
export function pgCode(err: unknown): string | undefined {
  const e = causes(err).find((c) => hasPgCode(c, []));
  return e ? (e as { code: string }).code : undefined;
}

function hasPgCode(err: unknown, codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && (codes.length === 0 || codes.includes(code));
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The database could not be reached or went away: worth retrying, and for HTTP a 503.
 * Covers socket errors, pg's own "Connection terminated" errors and the SQLSTATE classes 08 (connection
 * exception) and 57P0x (admin/crash shutdown, cannot connect now).
 */
export function isConnectionError(err: unknown): boolean {
  return causes(err).some(isConnectionErrorItself);
}

function isConnectionErrorItself(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08') || code.startsWith('57P'))) return true;
  const msg = (err as { message?: unknown }).message;
  // pg raises these as plain Errors without a code; the text is pg's own, not the server's.
  return typeof msg === 'string' && /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(msg);
}

/**
 * Sent at connection start (`options`): every statement is planned for its own parameters and the table sizes of
 * the moment. The write paths are named (prepared) statements that join arrays of keys to tables (`UPDATE orders …
 * FROM unnest($1::uuid[])`). By default PostgreSQL switches such a statement to a generic plan after five runs and
 * keeps it for the life of the connection: a plan made while a table was small (a new deployment, a fresh database)
 * is a hash join over a sequential scan, and it stayed while the table grew, so that every batch read the whole
 * table (1-4 ms per statement at 6,500 orders, more with every order). A custom plan uses the primary key once the
 * table is larger than a few pages. The price is planning each time (0.15 ms for the order consumer's read and
 * 0.3 ms for its write on a 2-core machine, EXPLAIN's planning time at 50,000 orders); services choose with DB_PLAN_CACHE_MODE. A connection string's own `options` parameter takes precedence.
 */
export const CUSTOM_PLANS = '-c plan_cache_mode=force_custom_plan';

/**
 * A pool whose idle-client errors are logged instead of crashing the process (node-postgres docs). With a registry,
 * every statement sent on its connections (BEGIN and COMMIT included) is counted in `db_statements_total`: round
 * trips to the database are what an order costs most, so operators and the benchmark can see them per service.
 */
export function createPool(connectionString: string, log: Logger, options: pg.PoolConfig = {}, registry?: Registry): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 10, connectionTimeoutMillis: 5000, options: CUSTOM_PLANS, ...options });
  const statements = registry && new Counter({ name: 'db_statements_total', help: 'Statements sent to the database (round trips)', registers: [registry] });
  pool.on('error', (err) => log.warn({ err }, 'idle database client failed'));
  pool.on('connect', (client) => {
    // A checked-out client whose connection dies between two queries (a transaction awaiting other work) emits
    // 'error' with nobody listening, which would crash the process; its next query fails and the pool drops it.
    client.on('error', (err) => log.warn({ err }, 'database connection lost'));
    if (statements) {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((...args: unknown[]) => {
        statements.inc();
        return query(...args);
      }) as typeof client.query;
    }
  });
  return pool;
}
