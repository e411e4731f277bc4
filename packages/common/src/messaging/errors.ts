import { ZodError } from 'zod';
import { UnknownEventError } from '../contracts/catalog';
import { isConnectionError, isPgError, pgCode } from '../db/pg';
import { SQLSTATE } from '../db/sqlstate';

export { conflict, DomainError, notFound } from '../domain/domain-error';

/** A message that can never be processed as it is (bad JSON, missing properties): dead-letter it at once. */
export class InvalidMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMessageError';
  }
}

export type Disposition = 'retry' | 'dead-letter';

/**
 * What a consumer does with a message whose handler failed (watermill's poison/retry predicates).
 * Only failures that can never succeed go straight to the dead-letter queue; anything else is retried with
 * backoff, a bounded number of times, then dead-lettered.
 */
export function classifyError(err: unknown): Disposition {
  if (err instanceof ZodError || err instanceof InvalidMessageError || err instanceof UnknownEventError)
    return 'dead-letter';
  if (err instanceof SyntaxError) return 'dead-letter';
  // 22xxx data exception, 23xxx integrity violation: the same input fails the same way every time.
  const code = pgCode(err) ?? '';
  if (code.startsWith(SQLSTATE.DATA_EXCEPTION_CLASS) || code.startsWith(SQLSTATE.INTEGRITY_CONSTRAINT_VIOLATION_CLASS))
    return 'dead-letter';
  if (isPgError(err, SQLSTATE.SERIALIZATION_FAILURE, SQLSTATE.DEADLOCK_DETECTED) || isConnectionError(err))
    return 'retry';
  return 'retry';
}

/** Message of any thrown value, for logs and dead-letter headers. */
export function errorMessage(err: unknown): string {
  if (err instanceof ZodError) return err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  if (err instanceof Error) return err.message;
  return String(err);
}
