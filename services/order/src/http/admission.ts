/**
 * Admission of new orders by the saga's backlog: when more orders are in progress (admitted, not yet confirmed or
 * cancelled) than the stack can finish within a couple of seconds, a new POST is answered 503 with Retry-After
 * instead of joining a queue that only grows. Orders already accepted are never affected: shedding happens before
 * anything is written.
 *
 * The count is the order database's, so every replica sees the same backlog. It is read at most once per
 * `refreshMs`, only while orders arrive, and never on a request's path: a request uses the last count read, plus the
 * orders this replica admitted that the database could not hold when it was read (waiting for their write, or
 * admitted since). A count is trusted for two intervals, and for up to TRUST_MAX_MS while reads keep following each
 * other (a count slow to come under load); after a quiet spell, or when reads fail for longer, the request is
 * admitted while a fresh count is read. Orders older than the window the query counts (stuck ones, an operator's
 * business) do not hold new ones back.
 */
import { unavailable } from '@saga/common/http/http-error';

export type AdmissionOptions = {
  /** New orders are refused while at least this many are in progress. */
  maxPending: number;
  refreshMs: number;
  now?: () => number;
  /** Called when a read fails; the last count read stays in force for at most TRUST_MAX_MS. */
  onReadError?: (err: unknown) => void;
  onShed?: () => void;
};

export const OVERLOADED = 'urn:saga:problem:overloaded';

export type Admission = { check: () => void; written: () => void; pending: () => number; busy: () => boolean };

/**
 * The share of `maxPending` from which the stack counts as behind (`busy`). At an everyday rate the orders in
 * progress are the rate times a saga's duration (200 orders/s x 60 ms: about 12); a quarter of the bound (150 by
 * default) is reached only when sagas queue up, at or past what the machine completes.
 */
export const BUSY_SHARE = 0.25;

/**
 * The longest a count stays in force while the reads after it are slow or fail: under overload the database is at
 * its busiest and a count can take seconds, but a read that hangs (a lost connection, up to the query timeout) or
 * keeps failing must not refuse every order on a count that no longer describes anything.
 */
export const TRUST_MAX_MS = 5000;

export function createAdmission(readPending: () => Promise<number>, o: AdmissionOptions): Admission {
  const now = o.now ?? (() => performance.now());
  let pending = 0;
  /** When the last count came (successful reads only), and when the last read ended, whatever its outcome. */
  let readAt = -Infinity;
  let triedAt = -Infinity;
  let reading = false;
  let readStartedAt = -Infinity;
  /**
   * Orders admitted here whose write has not ended: the database's count cannot hold them. Under overload they wait
   * in the write queue for seconds, so counting only those admitted while a read was under way let the backlog pass
   * its bound by that queue.
   */
  let unwritten = 0;
  /**
   * Writes that ended while a read was under way: committed after its snapshot, they are in neither its count nor
   * `unwritten` when it comes (one committed just before the snapshot is counted twice until the next read).
   */
  let endedDuringRead = 0;
  /**
   * Whether the last count still describes the backlog: it came within two intervals, or (for at most TRUST_MAX_MS)
   * the read under way started within two intervals of the one before it ended. A count slow to come under load
   * keeps the last one in force (trusting none then would admit every order exactly when the database is busiest); a
   * read started after a quiet spell does not.
   */
  const trusted = (t: number) =>
    t - readAt <= 2 * o.refreshMs ||
    (reading && t - readAt <= TRUST_MAX_MS && readStartedAt - triedAt <= 2 * o.refreshMs);
  const refresh = () => {
    if (reading || now() - triedAt < o.refreshMs) return;
    reading = true;
    readStartedAt = now();
    endedDuringRead = 0;
    readPending().then(
      (n) => {
        pending = n + unwritten + endedDuringRead;
        readAt = triedAt = now();
        reading = false;
      },
      (err: unknown) => {
        triedAt = now();
        reading = false;
        o.onReadError?.(err);
      },
    );
  };
  return {
    /** Throws 503 with Retry-After while the backlog is at its bound; starts a fresh count when the last is old. */
    check(): void {
      const stale = !trusted(now());
      refresh();
      if (stale || pending < o.maxPending) {
        pending++;
        unwritten++;
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
    /** The write of an order `check` admitted has ended (written, or failed): the database holds it or never will. */
    written(): void {
      if (unwritten > 0) unwritten--;
      if (reading) endedDuringRead++;
    },
    /** The last count read, plus the orders admitted here that it could not hold, plus those admitted since. */
    pending: () => pending,
    /**
     * Whether the saga's backlog is at least BUSY_SHARE of its bound, by a count still trusted: the stack is behind,
     * and work that can wait a few ms to be done in fewer transactions should (order writes). The orders admitted
     * since the last count are in it, so a replica taking over 150 orders a refresh interval (750/s) counts as behind
     * before any count shows a backlog; at that rate its writes gather groups anyway.
     */
    busy: () => trusted(now()) && pending >= o.maxPending * BUSY_SHARE,
  };
}
