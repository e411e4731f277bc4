/**
 * Admission of new orders by the saga's backlog: a new POST is answered 503 with Retry-After, instead of joining a
 * queue that only grows, when either
 * - more orders are in progress (placed, not yet confirmed or cancelled) than `maxPending`: a bound on the backlog
 *   that holds whatever happens downstream, or
 * - the saga moves but does not catch up, and an order accepted now would wait more than `maxWaitMs`: the order
 *   `skip` places behind the oldest in progress (the head) was placed longer ago than that, and over the last second
 *   or so the head got through placement time no faster than the clock (the backlog holds or grows: an overload).
 *   While it gets through it faster, a backlog (one an outage left) is draining: the shop catches up, it is not
 *   overloaded, and orders are taken.
 * When the head does not move at all (a service of the saga is down, or orders are stuck), only the count applies:
 * the shop keeps taking orders up to `maxPending`, and they finish when the saga is back; after a stop (the head
 * still for half a second or more), or a gap in the reads, the wait counts again only after a second of movement. Orders already accepted
 * are never affected: shedding happens before anything is written.
 *
 * The backlog is the order database's, so every replica sees the same one. It is read at most once per `refreshMs`,
 * only while orders arrive, and never on a request's path: a request uses the last read plus the orders this replica
 * admitted since that read started. A read older than two intervals (after a quiet spell) is not trusted: the
 * request is admitted while a fresh one is read. Orders older than the window the query covers (stuck ones, an
 * operator's business) hold nothing back.
 */
import { unavailable } from '@saga/common/http/http-error';
import type { Backlog } from '../db/order-repository';

/** Why an order was refused: too many in progress, or too long a wait. */
export type ShedReason = 'backlog' | 'wait';

export type AdmissionOptions = {
  /** New orders are refused while at least this many are in progress. */
  maxPending: number;
  /** New orders are refused while the moving saga is at least this far behind (ms); 0 or undefined: no such bound. */
  maxWaitMs?: number;
  refreshMs: number;
  now?: () => number;
  /** Called when a read fails; the last one read stays in force. */
  onReadError?: (err: unknown) => void;
  onShed?: (reason: ShedReason) => void;
};

export const OVERLOADED = 'urn:saga:problem:overloaded';

/** The saga's speed is measured over at least this long, by the database's clock (µs). */
const SPEED_WINDOW_US = 1_000_000;
/** A head that stands still this long (µs) means a stopped saga, not a slow one. */
const STOP_US = 500_000;

type Read = Pick<Backlog, 'atUs' | 'head'>;
type Head = NonNullable<Backlog['head']>;
const samePlace = (a: Head, b: Head) => a.placedUs === b.placedUs && a.id === b.id;

/** The head advancing this much faster than the clock: the backlog shrinks, the saga is catching up. */
const CATCHING_UP = 1.25;

/**
 * The wait (ms) of an order accepted at read `b`, judged from the head's move since the earlier read `ref`: the head's
 * age while the saga gets through placement time no faster than the clock (its backlog holds or grows: an overload);
 * 0 while it is faster (a backlog left by an outage, draining: the shop is not overloaded, it catches up), and 0
 * while the head did not move (stopped, or nothing to judge by). `last` while it moved only within the orders of one
 * group commit, which share their placed time.
 */
function estimateWait(ref: Read, b: Read, last: number): number {
  if (!b.head || !ref.head || b.atUs <= ref.atUs) return 0;
  const advanced = b.head.placedUs - ref.head.placedUs;
  if (advanced < 0) return 0;
  if (advanced === 0) return b.head.id > ref.head.id ? last : 0;
  const speed = advanced / (b.atUs - ref.atUs);
  return speed >= CATCHING_UP ? 0 : (b.atUs - b.head.placedUs) / 1000;
}

export type Admission = {
  check: () => void;
  /** The last count read, plus the orders admitted here since. */
  pending: () => number;
  /** The wait of an order accepted now (ms), as judged at the last read; 0 while the saga stops or catches up. */
  waitMs: () => number;
};

export function createAdmission(readBacklog: () => Promise<Backlog>, o: AdmissionOptions): Admission {
  const now = o.now ?? (() => performance.now());
  let pending = 0;
  /** The reads of the last speed window and the one just before it, oldest first. */
  let reads: Read[] = [];
  /** An order's wait estimated at the last read (ms); 0 while the saga does not move. */
  let wait = 0;
  /** The database's time (µs) of the last read that found the saga stopped, or that began measuring afresh. */
  let stoppedAtUs = -Infinity;
  /** Since when (µs) the reads have found the head where it is now. */
  let headSinceUs = -Infinity;
  let readAt = -Infinity;
  let reading = false;
  /** Orders admitted here since the read in progress started: the count it answers may not hold them. */
  let admittedSinceRead = 0;
  const stale = () => now() - readAt > 2 * o.refreshMs;
  const refresh = () => {
    if (reading || now() - readAt < o.refreshMs) return;
    reading = true;
    admittedSinceRead = 0;
    // After a quiet spell the last reads say nothing about the saga's speed now.
    if (stale()) reads = [];
    readBacklog().then(
      (b) => {
        const read: Read = { atUs: b.atUs, head: b.head };
        const last = reads[reads.length - 1];
        if (!last) {
          // A first read, or the first after a gap: nothing to measure the speed by yet.
          stoppedAtUs = b.atUs;
        } else if (last.head && b.head && samePlace(last.head, b.head)) {
          if (b.atUs - headSinceUs >= STOP_US) {
            // The head has stood still for a while: the saga is stopped (or orders are stuck), not slow. Its speed is
            // measured afresh from here, and only after a full window of movement does the wait count: the backlog a
            // stop leaves drains fast once the saga is back, and its first moves, next to the time it stood, would
            // say otherwise. A shorter pause (a batch that takes a while on a busy machine) is no stop.
            reads = [];
            stoppedAtUs = b.atUs;
          }
        } else {
          headSinceUs = b.atUs;
        }
        reads.push(read);
        while (reads.length > 1 && b.atUs - reads[1]!.atUs >= SPEED_WINDOW_US) reads.shift();
        wait = b.atUs - stoppedAtUs < SPEED_WINDOW_US ? 0 : estimateWait(reads[0]!, b, wait);
        pending = b.pending + admittedSinceRead;
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
  const waitMs = () => (stale() ? 0 : wait);
  return {
    /** Throws 503 with Retry-After while the backlog is at a bound; starts a fresh read when the last is old. */
    check(): void {
      const old = stale();
      refresh();
      const late = !!o.maxWaitMs && waitMs() >= o.maxWaitMs;
      if (old || (pending < o.maxPending && !late)) {
        pending++;
        admittedSinceRead++;
        return;
      }
      o.onShed?.(pending >= o.maxPending ? 'backlog' : 'wait');
      // No figure in the answer: how busy the shop is stays in the metrics.
      throw unavailable(
        'too many orders are in progress; this request was not accepted, try again (with the same Idempotency-Key, if it had one)',
        1,
        OVERLOADED,
      );
    },
    pending: () => pending,
    waitMs,
  };
}
