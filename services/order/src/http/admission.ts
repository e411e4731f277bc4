/**
 * Admission of new orders by the saga's backlog: when more orders are in progress (placed, not yet confirmed or
 * cancelled) than the stack can finish within a couple of seconds, a new POST is answered 503 with Retry-After
 * instead of joining a queue that only grows. Orders already accepted are never affected: shedding happens before
 * anything is written.
 *
 * The count is the order database's, so every replica sees the same backlog. It is read at most once per
 * `refreshMs`, only while orders arrive, and never on a request's path: a request uses the last count read plus the
 * orders this replica admitted since that read started. A count older than two intervals (after a quiet spell) is
 * not trusted: the request is admitted while a fresh count is read. Orders older than the window the query counts
 * (stuck ones, an operator's business) do not hold new ones back.
 */
import { unavailable } from '@saga/common/http/http-error';

export type AdmissionOptions = {
  /** New orders are refused while at least this many are in progress. */
  maxPending: number;
  refreshMs: number;
  now?: () => number;
  /** Called when a read fails; the last count read stays in force. */
  onReadError?: (err: unknown) => void;
  onShed?: () => void;
};

export const OVERLOADED = 'urn:saga:problem:overloaded';

export type Admission = { check: () => void; pending: () => number; busy: () => boolean };

/**
 * The share of `maxPending` from which the stack counts as behind (`busy`). At an everyday rate the orders in
 * progress are the rate times a saga's duration (200 orders/s x 60 ms: about 12); a quarter of the bound (150 by
 * default) is reached only when sagas queue up, at or past what the machine completes.
 */
export const BUSY_SHARE = 0.25;

export function createAdmission(readPending: () => Promise<number>, o: AdmissionOptions): Admission {
  const now = o.now ?? (() => performance.now());
  let pending = 0;
  let readAt = -Infinity;
  /** The last count still describes the backlog: it came within two intervals (not before a quiet spell). */
  const fresh = () => now() - readAt <= 2 * o.refreshMs;
  let reading = false;
  /** Orders admitted here since the read in progress started: the count it answers may not hold them. */
  let admittedSinceRead = 0;
  const refresh = () => {
    if (reading || now() - readAt < o.refreshMs) return;
    reading = true;
    admittedSinceRead = 0;
    readPending().then(
      (n) => {
        pending = n + admittedSinceRead;
        readAt = now();
        reading = false;
      },
      (err: unknown) => {
        readAt = now();
        reading = false;
        o.onReadError?.(err);
      },
    );
  };
  return {
    /** Throws 503 with Retry-After while the backlog is at its bound; starts a fresh count when the last is old. */
    check(): void {
      const stale = !fresh();
      refresh();
      if (stale || pending < o.maxPending) {
        pending++;
        admittedSinceRead++;
        return;
      }
      o.onShed?.();
      // No figure in the answer: how busy the shop is stays in the metrics.
      throw unavailable(
        'too many orders are in progress; this request was not accepted, try again (with the same Idempotency-Key, if it had one)',
        1,
        OVERLOADED,
      );
    },
    /** The last count read, plus the orders admitted here since. */
    pending: () => pending,
    /**
     * Whether the saga's backlog is at least BUSY_SHARE of its bound, by a count read within two intervals: the stack
     * is behind, and work that can wait a few ms to be done in fewer transactions should (order writes). The orders
     * admitted since the last count are in it, so a replica taking over 150 orders a refresh interval (750/s) counts
     * as behind before any count shows a backlog; at that rate its writes gather groups anyway.
     */
    busy: () => fresh() && pending >= o.maxPending * BUSY_SHARE,
  };
}
