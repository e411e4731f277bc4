/**
 * At most one status update per interval to the server: every acknowledgement is a message the relay writes and the
 * walsender reads and applies, and at a few hundred transactions a second (each acknowledged when its confirms came
 * back) they were a fifth of the relay's CPU. Acknowledging later is always safe (the slot only keeps more WAL, and a
 * restart replays a little more, which consumers dedupe); acknowledging a position not yet confirmed never happens
 * here, since only positions the pipe handed in are sent.
 *
 * - The first acknowledgement after a quiet interval is sent at once (an idle stream's latency is unchanged).
 * - Later ones within the interval are merged into one, sent when the interval is over.
 * - A keepalive answer (`ping`) and `flush()` send the highest pending position at once.
 */
export type AckSender = (lsn: bigint, ping: boolean) => void;
export type AckClock = {
  now: () => number;
  setTimer: (fn: () => void, ms: number) => { cancel: () => void };
};

export type AckCoalescer = {
  acknowledge: (lsn: bigint, ping?: boolean) => void;
  /** Send what is pending now (before a stop). */
  flush: () => void;
  /** Send nothing more; a pending position is dropped (the stream is gone). */
  stop: () => void;
};

export const realAckClock: AckClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export function ackCoalescer(send: AckSender, intervalMs: number, clock: AckClock = realAckClock): AckCoalescer {
  let lastSentAt = -Infinity;
  let pending: bigint | undefined;
  let timer: { cancel: () => void } | undefined;
  let stopped = false;
  const sendNow = (lsn: bigint, ping: boolean) => {
    timer?.cancel();
    timer = undefined;
    pending = undefined;
    lastSentAt = clock.now();
    send(lsn, ping);
  };
  const flush = () => {
    if (!stopped && pending !== undefined) sendNow(pending, false);
  };
  return {
    acknowledge(lsn, ping = false) {
      if (stopped) return;
      const highest = pending !== undefined && pending > lsn ? pending : lsn;
      const wait = lastSentAt + intervalMs - clock.now();
      if (ping || wait <= 0) return sendNow(highest, ping);
      pending = highest;
      timer ??= clock.setTimer(() => {
        timer = undefined;
        flush();
      }, wait);
    },
    flush,
    stop() {
      stopped = true;
      timer?.cancel();
      timer = undefined;
    },
  };
}
