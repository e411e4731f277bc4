/**
 * What a consumer does with a message that failed: a pure decision over the error and the attempt it was (watermill's
 * retry and poison-queue predicates in one place), tested alone in test/unit/failure-policy.test.ts.
 */
import { retryDelay } from '../runtime/lifecycle';
import { classifyError } from './errors';

export type DeadLetterReason = 'invalid' | 'retries-exhausted';

export type FailureDecision =
  /**
   * Not the message's fault (the database is unreachable, read-only, full, not migrated, timing out): keep it
   * unsettled, spend no attempt, try again later.
   */
  | { kind: 'hold' }
  /** Park it in the retry queue for `delayMs`; `attempt` is the attempt that just failed (1 for the first). */
  | { kind: 'retry'; attempt: number; delayMs: number }
  /** Park it in the dead-letter queue for a person. */
  | { kind: 'dead-letter'; attempt: number; reason: DeadLetterReason };

export type FailurePolicy = {
  /** Tries of a transiently failing message before it is dead-lettered. */
  maxAttempts: number;
  /** First retry delay; doubles per attempt up to 30 s. */
  retryBaseMs: number;
};

/** The decision for `err`, raised by the `attempt`-th try of a message (1 for the first). */
export function decideFailure(err: unknown, attempt: number, policy: FailurePolicy): FailureDecision {
  const disposition = classifyError(err);
  if (disposition === 'hold') return { kind: 'hold' };
  if (disposition === 'dead-letter') return { kind: 'dead-letter', attempt, reason: 'invalid' };
  if (attempt >= policy.maxAttempts) return { kind: 'dead-letter', attempt, reason: 'retries-exhausted' };
  return { kind: 'retry', attempt, delayMs: retryDelay(attempt, policy.retryBaseMs) };
}
