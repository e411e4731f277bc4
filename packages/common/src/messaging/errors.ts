import { ZodError } from 'zod';
import { UnknownEventError } from '../contracts/catalog';
import { isConnectionError, pgCode } from '../db/pg';
import { SQLSTATE } from '../db/sqlstate';

export { conflict, DomainError, notFound } from '../domain/domain-error';

/** A message that can never be processed as it is (bad JSON, missing properties): dead-letter it at once. */
export class InvalidMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMessageError';
  }
}

export type Disposition = 'hold' | 'retry' | 'dead-letter';

/**
 * Failures that are the environment's, not the message's: the same message passes once an operator or the platform
 * repairs the database. A consumer holds its messages through them without spending an attempt.
 */
const ENVIRONMENT_CODES: readonly string[] = [
  SQLSTATE.READ_ONLY_SQL_TRANSACTION, // a standby after a failover
  SQLSTATE.INVALID_AUTHORIZATION_SPECIFICATION,
  SQLSTATE.INVALID_PASSWORD, // a rotated password
  SQLSTATE.INVALID_CATALOG_NAME, // the database is not there yet
  SQLSTATE.UNDEFINED_TABLE, // migrations not applied yet
  SQLSTATE.UNDEFINED_COLUMN,
  SQLSTATE.LOCK_NOT_AVAILABLE, // lock_timeout
  SQLSTATE.QUERY_CANCELED, // statement_timeout
];

/** The database cannot serve anyone right now: unreachable, short of a resource, or not set up for us. */
export function isEnvironmentError(err: unknown): boolean {
  if (isConnectionError(err)) return true;
  const code = pgCode(err);
  if (code === undefined) return false;
  return code.startsWith(SQLSTATE.INSUFFICIENT_RESOURCES_CLASS) || ENVIRONMENT_CODES.includes(code);
}

/**
 * What a consumer does with a message whose handler failed (watermill's poison/retry predicates). Failures of the
 * environment hold the message; failures that can never succeed go straight to the dead-letter queue; anything else
 * is retried with backoff, a bounded number of times, then dead-lettered.
 */
export function classifyError(err: unknown): Disposition {
  if (isEnvironmentError(err)) return 'hold';
  if (err instanceof ZodError || err instanceof InvalidMessageError || err instanceof UnknownEventError)
    return 'dead-letter';
  if (err instanceof SyntaxError) return 'dead-letter';
  const code = pgCode(err) ?? '';
  // The same input fails the same way every time.
  if (code.startsWith(SQLSTATE.DATA_EXCEPTION_CLASS) || code.startsWith(SQLSTATE.INTEGRITY_CONSTRAINT_VIOLATION_CLASS))
    return 'dead-letter';
  // Serialization failures and deadlocks pass on a later try; so, with luck, does anything unknown.
  return 'retry';
}

/** Message of any thrown value, for logs and dead-letter headers. */
export function errorMessage(err: unknown): string {
  if (err instanceof ZodError) return err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  if (err instanceof Error) return err.message;
  return String(err);
}
