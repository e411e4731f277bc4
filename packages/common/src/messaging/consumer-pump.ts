/**
 * The batching pump: deliveries in, batches out. Pure rules over one port, so each is tested with fakes
 * (test/unit/consumer-pump.test.ts):
 * - batches run one at a time, in delivery order, each holding deliveries of one channel only (an acknowledgement
 *   covers deliveries of its own channel);
 * - what arrived while the previous batch ran (up to `maxBatch`) goes into the next one;
 * - pacing: a batch that is not full starts at least `batchIntervalMs` after the start of the previous one, so
 *   messages that keep coming are gathered instead of a transaction each; a full batch starts at once;
 * - a batch that could not be settled gives its channel up: its buffered deliveries are dropped, and deliveries that
 *   still arrive on it are ignored (the broker returns them when the channel closes; applied, their multiple
 *   acknowledgement would cover the unsettled batch).
 */
import { wakeableSleeps } from '../runtime/lifecycle';

export type PumpPort<C, M> = {
  /** Apply, settle and acknowledge one batch. Rejects when it could not be settled (nothing acknowledged). */
  runBatch: (channel: C, batch: M[]) => Promise<void>;
  /** `runBatch` rejected: give the channel up, so that the broker returns its unacknowledged deliveries. */
  abandon: (channel: C, err: unknown, size: number) => void;
};

export type PumpOptions = {
  /** Most deliveries in one batch. */
  maxBatch: number;
  /** Shortest time between the starts of two batches that are not full (0: start every batch at once). */
  batchIntervalMs: number;
  /** A monotonic clock in milliseconds. */
  now?: () => number;
};

export type Pump<C, M> = {
  /** A delivery arrived on `channel`. */
  push: (channel: C, msg: M) => void;
  /** `channel` closed: its buffered deliveries come back from the broker, so they are dropped here. */
  drop: (channel: C) => void;
  /** Stop pacing (a batch being gathered starts now) and resolve when every buffered delivery is handled. */
  drain: () => Promise<void>;
};

export function createPump<C, M>(port: PumpPort<C, M>, opts: PumpOptions): Pump<C, M> {
  const now = opts.now ?? (() => performance.now());
  let buffer: { channel: C; msg: M }[] = [];
  let pumping: Promise<void> | undefined;
  let draining = false;
  let lastBatchAt = -Infinity;
  /** The pump's wait while it gathers a batch, ended early when a full batch is buffered. */
  const gathering = wakeableSleeps();
  /** Channels whose batch could not be settled and which are being closed. */
  const abandoned = new WeakSet<object>();

  /** The next batch: deliveries of the first buffered one's channel, up to `maxBatch`. */
  function take(): { channel: C; batch: M[] } {
    const channel = buffer[0]!.channel;
    let n = 1;
    while (n < opts.maxBatch && n < buffer.length && buffer[n]!.channel === channel) n++;
    const batch = buffer.slice(0, n).map((b) => b.msg);
    buffer = buffer.slice(n);
    return { channel, batch };
  }

  /** Apply what is buffered, batch after batch, until the buffer is empty. */
  function pump(): Promise<void> {
    if (pumping) return pumping;
    // Nothing to do (the channel of what was buffered closed meanwhile): no run, so none can outlive itself.
    if (buffer.length === 0) return Promise.resolve();
    const run = (async () => {
      while (buffer.length > 0) {
        if (buffer.length < opts.maxBatch && !draining) {
          const wait = lastBatchAt + opts.batchIntervalMs - now();
          if (wait > 0) await gathering.sleep(wait);
          // The channel of what was buffered closed meanwhile: its messages come back from the broker.
          if (buffer.length === 0) break;
        }
        lastBatchAt = now();
        const { channel, batch } = take();
        try {
          await port.runBatch(channel, batch);
        } catch (err) {
          // Nothing of this batch may be acknowledged by a later one: give the whole channel up.
          buffer = buffer.filter((b) => b.channel !== channel);
          abandoned.add(channel as object);
          port.abandon(channel, err, batch.length);
        }
      }
    })().finally(() => {
      if (pumping === run) pumping = undefined;
    });
    pumping = run;
    return run;
  }

  return {
    push(channel, msg) {
      if (abandoned.has(channel as object)) return;
      buffer.push({ channel, msg });
      if (buffer.length >= opts.maxBatch) gathering.wake();
      // Start a batch on the next turn of the event loop, so that what arrived in the same read joins it.
      if (!pumping) setImmediate(() => void pump());
    },
    drop(channel) {
      buffer = buffer.filter((b) => b.channel !== channel);
    },
    async drain() {
      draining = true;
      // Everything delivered before the cancel is buffered: a batch being gathered starts now, with all of it.
      gathering.wake();
      while (pumping || buffer.length > 0) await (pumping ?? pump());
    },
  };
}
