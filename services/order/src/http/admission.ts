/**
 * Admission of new orders by the saga's backlog: when more orders are in progress (placed, not yet confirmed or
 * cancelled) than the stack can finish within a couple of seconds, a new POST is answered 503 with Retry-After
 * instead of joining a queue that only grows. Orders already accepted are never affected: shedding happens before
 * anything is written.
 *
 * The count is the order database's, so every replica sees the same backlog. It is read at most once per
 * `refreshMs`, only while orders arrive, and never on a request's path: a request uses the last count read. Orders
 * older than the window the query counts (stuck ones, an operator's business) do not hold new ones back.
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

export type Admission = { check: () => void; pending: () => number };

export function createAdmission(readPending: () => Promise<number>, o: AdmissionOptions): Admission {
  const now = o.now ?? (() => performance.now());
  let pending = 0;
  let readAt = -Infinity;
  let reading = false;
  const refresh = () => {
    if (reading || now() - readAt < o.refreshMs) return;
    reading = true;
    readPending().then(
      (n) => {
        pending = n;
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
      refresh();
      if (pending < o.maxPending) return;
      o.onShed?.();
      throw unavailable(
        `${pending} orders are in progress, more than this shop takes at once; try again`,
        1,
        OVERLOADED,
      );
    },
    /** The last count read. */
    pending: () => pending,
  };
}
