import pg from 'pg';
import type { Logger } from './logger';

/** True when `err` is a PostgreSQL error with one of the given SQLSTATE codes (never branch on message text). */
export function isPgError(err: unknown, ...codes: string[]): err is pg.DatabaseError {
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
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08') || code.startsWith('57P'))) return true;
  const msg = (err as { message?: unknown }).message;
  // pg raises these as plain Errors without a code; the text is pg's own, not the server's.
  return typeof msg === 'string' && /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(msg);
}

/** A pool whose idle-client errors are logged instead of crashing the process (node-postgres docs). */
export function createPool(connectionString: string, log: Logger, options: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString, max: 10, connectionTimeoutMillis: 5000, ...options });
  pool.on('error', (err) => log.warn({ err }, 'idle database client failed'));
  return pool;
}
