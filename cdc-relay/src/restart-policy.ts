/**
 * What to do after a session ended with an error: a pure function of the error (its SQLSTATE where it has one) and
 * the attempt, like pg-transactional-outbox's getRestartTimeout. The source's loop waits the answer's delay and runs
 * the next session.
 */
import { pgCode } from '@saga/common/db/pg';
import { backoffDelay } from '@saga/common/runtime/lifecycle';
import { BrokerRefusalError } from './outbound';
import { SlotLostError, SlotMissingError } from './slots';

export type RestartKind =
  /** Another relay streams the slot: poll, no alarm (55006). */
  | 'standby'
  /** The slot is missing or lost: nothing streams until an operator acts; retry slowly, reported as an error. */
  | 'slot'
  /** A setting or grant is wrong (authentication, privilege, database): it will not fix itself soon; retry slowly. */
  | 'misconfigured'
  /** The server is restarting or the link dropped: retry with backoff, not an alarm by itself. */
  | 'transient'
  /** Anything else: retry with backoff. */
  | 'retry';

export type Restart = { kind: RestartKind; delayMs: number };

export type RestartTimes = { baseMs: number; capMs: number; standbyPollMs: number; random?: () => number };

const SQLSTATE: Record<string, RestartKind> = {
  '55006': 'standby', // object_in_use: the slot is active for another PID
  '42704': 'slot', // undefined_object: the slot was dropped between the check and START_REPLICATION
  '28000': 'misconfigured', // invalid_authorization_specification
  '28P01': 'misconfigured', // invalid_password
  '42501': 'misconfigured', // insufficient_privilege (REPLICATION, or the marker table's grant)
  '3D000': 'misconfigured', // invalid_catalog_name: no such database
  '42P01': 'misconfigured', // undefined_table: the marker table (run migrate)
  '57P01': 'transient', // admin_shutdown
  '57P02': 'transient', // crash_shutdown
  '57P03': 'transient', // cannot_connect_now: starting up, or in recovery
  '53300': 'transient', // too_many_connections
  '08006': 'transient', // connection_failure
};

export function restartDecision(err: unknown, attempt: number, t: RestartTimes): Restart {
  const kind = kindOf(err);
  switch (kind) {
    case 'standby':
      return { kind, delayMs: t.standbyPollMs };
    case 'slot':
    case 'misconfigured':
      return { kind, delayMs: t.capMs };
    case 'transient':
    case 'retry':
      return { kind, delayMs: backoffDelay(attempt, t.baseMs, t.capMs, t.random) };
  }
}

function kindOf(err: unknown): RestartKind {
  if (err === undefined) return 'retry';
  if (err instanceof SlotMissingError || err instanceof SlotLostError) return 'slot';
  // The next session sends one at a time up to the refused message: at once, it is not the broker's fault.
  if (err instanceof BrokerRefusalError) return 'transient';
  const code = pgCode(err);
  return (code && SQLSTATE[code]) || 'retry';
}
