import pg from 'pg';
import { Counter, type Registry } from 'prom-client';
import { pgClientSocket } from '../runtime/library-internals';
import { settleWithin } from '../runtime/settle';
import type { Logger } from '../runtime/logger';
import { SQLSTATE } from './sqlstate';

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

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

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
  if (
    typeof code === 'string' &&
    (CONNECTION_CODES.has(code) || code.startsWith(SQLSTATE.CONNECTION_EXCEPTION_CLASS) || code.startsWith('57P'))
  )
    return true;
  const msg = (err as { message?: unknown }).message;
  // pg raises these as plain Errors without a code; the text is pg's own, not the server's.
  return (
    typeof msg === 'string' &&
    /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Query read timeout)/.test(
      msg,
    )
  );
}

export type PlanCacheMode = 'auto' | 'force_custom_plan';

/**
 * The `options` startup parameter that sets PostgreSQL's plan_cache_mode for a pool's connections (DB_PLAN_CACHE_MODE).
 * The write paths are named (prepared) statements that join arrays of keys to tables (`UPDATE orders … FROM
 * unnest($1::uuid[])`). With `auto`, PostgreSQL's default, such a statement gets a generic plan after five runs and
 * keeps it until the table's statistics change: a plan made while a table was small (a fresh deployment) is a hash
 * join over a sequential scan. Autovacuum's ANALYZE renews it as the table grows; where autovacuum is off or lags
 * (this project's test machine runs without it), the plan stays and every batch reads the whole table (6.7 against
 * 7.7 ms per batch of 20 at 6,500 orders, 5.3 against 84 ms at 200,000; `npm run bench -- --only=plans`).
 * `force_custom_plan` plans every run for the sizes of the moment, at the price of planning each time (EXPLAIN:
 * 0.16 ms for the order consumer's read, 0.30 ms for its write; in the saga benchmark 0.2-0.5 ms more PostgreSQL
 * CPU per order, most at low concurrency where batches are small). It is added to PGOPTIONS, which node-postgres
 * would otherwise read itself; an `options` parameter in the connection URL replaces both (node-postgres applies the
 * URL's parameters last).
 */
export const planCacheOptions = (mode: PlanCacheMode): string =>
  [process.env.PGOPTIONS, `-c plan_cache_mode=${mode}`].filter(Boolean).join(' ');

/** What a service sets on each of its pools. */
export type PoolSettings = {
  max: number;
  applicationName: string;
  planCacheMode: PlanCacheMode;
  /** Client-side deadline of each round trip (node-postgres query_timeout). */
  queryTimeoutMs: number;
  /** TCP keepalive: the first probe after this much silence. */
  keepAliveMs: number;
};

/**
 * A service pool's configuration. Every round trip has a deadline: on a half-open connection (a peer gone without a
 * FIN or RST, a NAT or proxy that forgot the flow) a query would otherwise wait for ever, holding a consumer's batch
 * unacknowledged and a request open. The server's own statement_timeout (set per role by setup) ends slow statements
 * first; query_timeout catches the link that carries no answer at all. The pool then drops the client.
 */
export function poolConfig(s: PoolSettings): pg.PoolConfig {
  return {
    max: s.max,
    application_name: s.applicationName,
    options: planCacheOptions(s.planCacheMode),
    query_timeout: s.queryTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: s.keepAliveMs,
  } as pg.PoolConfig;
}

/**
 * A pool whose idle-client errors are logged instead of crashing the process (node-postgres docs). With a registry,
 * every exchange with the database on its connections is counted in `db_statements_total` (a BEGIN or COMMIT sent on
 * its own is one; one sent with a statement, as a consumer's batch does, is part of that statement's): round trips
 * to the database are what an order costs most, so operators and the benchmark can see them per service.
 */
export function createPool(
  connectionString: string,
  log: Logger,
  options: pg.PoolConfig = {},
  registry?: Registry,
): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 10, connectionTimeoutMillis: 5000, ...options });
  // One counter per registry, whatever the number of pools (a service has one for HTTP and one for its consumer).
  const statements =
    registry &&
    ((registry.getSingleMetric('db_statements_total') as Counter | undefined) ??
      new Counter({
        name: 'db_statements_total',
        help: 'Statements sent to the database (round trips)',
        registers: [registry],
      }));
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

/**
 * End a client, but never wait longer than `ms`: on a link gone silent (no FIN, no RST) `end()` waits for the server
 * to close the socket, which only TCP's retransmission timeout (minutes) ends. Past the bound the socket is destroyed.
 */
export async function endWithin(client: pg.Client, ms: number): Promise<void> {
  // An end that fails has ended too (the connection was already gone).
  const ended = client.end().catch(() => undefined);
  await settleWithin(ended, ms, 'database client end').catch(() => pgClientSocket(client)?.destroy());
}
