import { wakeableSleeps } from '../runtime/lifecycle';

/** The queue of a group commit is full: the item was not accepted (nothing of it was written). */
export class QueueFullError extends Error {
  constructor(readonly queued: number) {
    super(`group commit queue is full (${queued} waiting)`);
    this.name = 'QueueFullError';
  }
}

export type GroupCommitOptions = {
  /** At most this many items wait for a write; one more is refused with QueueFullError (load shedding). */
  maxQueued?: number;
  /**
   * Whether a group that failed with `err` is written again one item at a time (so one bad item fails only its own
   * caller). A transient error (a lost connection) fails every item of the group instead: writing them one by one
   * would meet the same error as many times.
   */
  isolate?: (err: unknown) => boolean;
  /**
   * Pacing: a write that is not full starts at least this many ms after the previous write started, so items that
   * keep coming share a commit instead of each paying its own; the first item after a quiet spell is written at once.
   * 0 (the default): a write starts as soon as a slot is free. A function is asked again before each write, so the
   * pacing can follow the load (none while the service keeps up, some while it is behind).
   */
  intervalMs?: number | (() => number);
  now?: () => number;
};

/**
 * Group commit inside one process: what callers submit while a write is in flight is written together by the next
 * one (at most `maxBatch` at a time), so a busy service pays one statement and one commit for many requests and an
 * idle one adds no delay. Up to `maxInFlight` writes run at once: with one, a caller who arrives just after a write
 * started waits for it to finish before its own starts (two commits' time); with two, its group starts at once on
 * another connection. With `intervalMs`, a write that is not full also waits for its turn (at most one start per
 * interval), so under a steady trickle several requests share a commit; a full group never waits. When a group fails
 * and `isolate` says so, its items are written one at a time, so one bad item fails only its own caller and every
 * other item is written exactly as if it had been alone.
 */
export function createGroupCommit<T, R>(
  write: (items: T[]) => Promise<R[]>,
  maxBatch = 64,
  maxInFlight = 1,
  opts: GroupCommitOptions = {},
): (item: T) => Promise<R> {
  const maxQueued = opts.maxQueued ?? Number.POSITIVE_INFINITY;
  const isolate = opts.isolate ?? (() => true);
  const interval = opts.intervalMs ?? 0;
  const intervalMs = typeof interval === 'function' ? interval : () => interval;
  const now = opts.now ?? (() => performance.now());
  let queue: { item: T; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  let inFlight = 0;
  let lastStart = -Infinity;
  /** Writes waiting for their turn: woken early when a full group is queued. */
  const turns = wakeableSleeps();

  /** Until the paced start of the next write, unless a full group is waiting (the interval asked again on waking). */
  async function paced(): Promise<void> {
    for (;;) {
      const wait = lastStart + intervalMs() - now();
      if (wait <= 0 || queue.length >= maxBatch) return;
      await turns.sleep(wait);
    }
  }

  async function flush(): Promise<void> {
    inFlight++;
    try {
      while (queue.length > 0) {
        if (intervalMs() > 0) {
          await paced();
          // Another write took the group while this one waited.
          if (queue.length === 0) break;
        }
        lastStart = now();
        const group = queue.slice(0, maxBatch);
        queue = queue.slice(group.length);
        try {
          const results = await write(group.map((g) => g.item));
          group.forEach((g, i) => g.resolve(results[i]!));
        } catch (err) {
          if (group.length === 1 || !isolate(err)) for (const g of group) g.reject(err);
          else
            for (const g of group) {
              try {
                const [r] = await write([g.item]);
                g.resolve(r!);
              } catch (e) {
                g.reject(e);
              }
            }
        }
      }
    } finally {
      inFlight--;
    }
  }

  return (item) =>
    new Promise<R>((resolve, reject) => {
      if (queue.length >= maxQueued) return reject(new QueueFullError(queue.length));
      queue.push({ item, resolve, reject });
      if (inFlight < maxInFlight) void flush();
      else if (queue.length >= maxBatch) turns.wake();
    });
}
