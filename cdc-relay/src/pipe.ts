/**
 * The relay pipe: WAL messages in, confirmed publishes out, acknowledgements back to the WAL (cf. Watermill's
 * forwarder, "subscriber in, publisher out"). Pure rules over two ports, so each rule is tested with fakes.
 *
 * The rules:
 * - a message is stored only when the broker confirmed it and did not return it; then its transaction may count;
 * - an LSN is acknowledged only when every message up to it is stored (the commit's end, in WAL order);
 * - a row the broker or the AMQP encoder cannot take goes to the invalid queue (mandatory, confirmed) and the
 *   stream goes on; if even that cannot be stored, the session fails;
 * - after a failure nothing is acknowledged by any path, and nothing more is handled: the next session starts from
 *   the slot's confirmed position.
 */
import type { EncodedMessage } from '@saga/common/messaging/envelope-codec';
import { encodeInvalid } from '@saga/common/messaging/envelope-codec';
import { createLsnTracker, parseLsn, type TxEntry } from './lsn';
import { createLagClock } from './lag';
import { createOutbound, type Outgoing } from './outbound';
import type { WalMessage } from './pgoutput';
import { SessionError, type PublisherPort, type Refusal } from './pipe-types';

export { SessionError } from './pipe-types';
export type { PublisherPort, Refusal, Settled } from './pipe-types';

/** The WAL side, as the pipe needs it. */
export type WalPort = {
  /** Stop reading the replication stream (backpressure); what was decoded already is still handled. */
  pause: () => void;
  resume: () => void;
  /** Report `lsn` (an end position) as flushed: the server may drop WAL before it. */
  acknowledge: (lsn: bigint) => void;
};

/** The invalid-queue copy of a row the broker refused is cut to this: the refusal may have been for its size. */
const REFUSED_COPY_LIMITS = { maxBodyBytes: 64 * 1024, maxHeaderBytes: 16 * 1024 };

export type PipeEvents = {
  published?: () => void;
  invalid?: (reason: string, row: Record<string, unknown>) => void;
  refused?: (messageId: string | undefined, why: Refusal) => void;
  confirmSeconds?: (s: number) => void;
  /**
   * An acknowledgement sent: `lsn`, and the commit time (microseconds since the Unix epoch, the source server's
   * clock) of the last transaction it covers, when one is known. That time is where a reconcile starts after the
   * slot is lost (a failover to a server without it): everything committed after it may not have been published.
   */
  acknowledged?: (lsn: bigint, commitTimeUs: bigint | undefined) => void;
};

export type PipeOptions = {
  wal: WalPort;
  publisher: PublisherPort;
  encode: (row: Record<string, unknown>) => EncodedMessage;
  source: string;
  table: string;
  exchange: string;
  invalidQueue: string;
  maxInFlight: number;
  /** In-flight window of the first messages (default maxInFlight; 1 after a failure, growing with the confirms). */
  startWindow?: number;
  /** Send one at a time up to the row with this id (the last one sent when a session failed on a refusal). */
  isolateThrough?: string;
  /** Backoff of a message the broker nacked, sent again in the session. */
  retry?: { baseMs: number; capMs: number };
  /** Position the slot already confirmed: nothing at or below it is acknowledged again. */
  acked: bigint;
  /** Called once, with the first failure. */
  onFail: (err: Error) => void;
  events?: PipeEvents;
  now?: () => number;
};

export function createRelayPipe(o: PipeOptions) {
  const tracker = createLsnTracker();
  const ev = o.events ?? {};
  const now = o.now ?? (() => performance.now());
  let acked = o.acked;
  let txn: TxEntry | undefined;
  let failed: Error | undefined;
  let draining = false;
  let paused = false;
  let waiters: (() => void)[] = [];
  // Commit ends and times of transactions not acknowledged yet: the stream's lag, and where a reconcile starts.
  const clock = createLagClock();

  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const fail = (err: Error) => {
    if (failed) return;
    failed = err;
    wake();
    o.onFail(err);
  };

  const sendAck = (lsn: bigint) => {
    acked = lsn;
    clock.acknowledged(lsn);
    o.wal.acknowledge(lsn);
    ev.acknowledged?.(lsn, clock.ackedCommitUs());
  };
  /** Acknowledge what the tracker allows; never after a failure. */
  const flushAck = () => {
    if (failed) return;
    const a = tracker.ackable();
    if (a !== undefined && a > acked) sendAck(a);
  };

  const pauseIfFull = () => {
    if (!paused && (!o.publisher.writable() || tracker.inFlight() >= o.maxInFlight)) {
      paused = true;
      o.wal.pause();
    }
  };
  const resumeIfRoom = () => {
    if (paused && !failed && o.publisher.writable() && tracker.inFlight() < Math.max(1, o.maxInFlight / 2)) {
      paused = false;
      o.wal.resume();
    }
  };

  const outbound = createOutbound({
    publisher: o.publisher,
    maxInFlight: o.maxInFlight,
    startWindow: o.startWindow ?? o.maxInFlight,
    isolateThrough: o.isolateThrough,
    retry: o.retry ?? { baseMs: 250, capMs: 10_000 },
    now,
    failed: () => failed !== undefined,
    fail: (err) => fail(err),
    stored(x) {
      ev.confirmSeconds?.((now() - x.started!) / 1000);
      if (!x.invalid) ev.published?.();
      tracker.confirmed(x.e);
      if (tracker.inFlight() === 0) wake();
      resumeIfRoom();
    },
    toInvalid(x, reason) {
      ev.invalid?.(reason, x.row);
      x.m = encodeInvalid(x.row, o.source, o.table, reason, REFUSED_COPY_LIMITS);
      x.exchange = '';
      x.routingKey = o.invalidQueue;
      x.invalid = true;
    },
    refused: (x, why) => ev.refused?.(x.m.options.messageId, why),
  });

  function insert(e: TxEntry, row: Record<string, unknown>): void {
    const m = o.encode(row);
    tracker.published(e);
    const x: Outgoing = {
      e,
      row,
      m,
      exchange: o.exchange,
      routingKey: '',
      invalid: false,
      key: undefined,
      attempts: 0,
    };
    if (m.ok) {
      x.routingKey = m.routingKey;
      x.key = aggregateKey(row);
    } else {
      ev.invalid?.(m.reason, row);
      x.exchange = '';
      x.routingKey = o.invalidQueue;
      x.invalid = true;
    }
    outbound.submit(x);
  }

  return {
    /** Handle one decoded WAL message. Never throws: a broken rule fails the session. */
    onMessage(msg: WalMessage): void {
      if (failed || draining) return;
      try {
        switch (msg.tag) {
          case 'begin':
            // An open transaction that never commits would hold every later acknowledgement back for good.
            if (txn) throw new SessionError('begin inside an open transaction');
            txn = tracker.begin();
            break;
          case 'insert':
            if (msg.relation.name !== o.table) break;
            // An entry opened here would never see its commit and would hold acknowledgements back for good.
            if (!txn) throw new SessionError('insert outside a transaction');
            insert(txn, msg.new);
            pauseIfFull();
            break;
          case 'commit': {
            // Acknowledge with the commit's end: the LSN of other messages is unreliable.
            if (!txn) throw new SessionError('commit outside a transaction');
            if (!msg.commitEndLsn) throw new SessionError('commit without an end position');
            const end = parseLsn(msg.commitEndLsn);
            tracker.commit(txn, end);
            clock.committed(end, BigInt(msg.commitTime as bigint));
            txn = undefined;
            break;
          }
          case 'undecodable':
            throw new SessionError(`replication message could not be decoded: ${msg.error.message}`);
          default:
            break;
        }
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    },

    /**
     * A server keepalive at `walEnd`. With nothing open and nothing awaiting a confirm, the slot may move past WAL
     * of other tables (so a quiet outbox does not make the server keep WAL); never mid-transaction, never after a
     * failure, never while draining.
     */
    onKeepalive(walEnd: bigint, shouldRespond: boolean): void {
      if (failed) return;
      flushAck();
      if (!draining && txn === undefined && tracker.idle() && walEnd > acked) {
        sendAck(walEnd);
        return;
      }
      if (shouldRespond) o.wal.acknowledge(acked);
    },

    flushAck,
    /**
     * The session is over: whatever settles from now on is ignored (not counted as a refusal) and nothing more is
     * acknowledged. Does not report a failure.
     */
    close(): void {
      outbound.close();
      if (failed) return;
      failed = new SessionError('session closed');
      wake();
    },
    /** Room again in the client's buffer. */
    onWritable: resumeIfRoom,
    fail,

    /** Stop handling messages; wait until every published message settled, a failure, or the deadline; acknowledge. */
    async drain(deadlineMs: number): Promise<void> {
      draining = true;
      while (!failed && tracker.inFlight() > 0 && Date.now() < deadlineMs) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100).unref?.();
        });
      }
      flushAck();
    },

    acked: () => acked,
    /** Commit time (µs since the epoch) of the last acknowledged transaction this session saw, if any. */
    ackedCommitTimeUs: () => clock.ackedCommitUs(),
    /** The stream's view of the lag (lag.ts): since the commit of the oldest transaction not acknowledged. */
    streamLagSeconds: (nowMs: number) => clock.streamLagSeconds(nowMs),
    failed: () => failed,
    inFlight: () => tracker.inFlight(),
    /** The outbound window now (1 while sending one at a time). */
    window: () => outbound.window(),
    paused: () => paused,
  };
}
export type RelayPipe = ReturnType<typeof createRelayPipe>;

/** The aggregate a row's order is kept within: its type and id (strings, as the codec checked). */
const aggregateKey = (row: Record<string, unknown>) =>
  `${row.aggregatetype as string}\u0000${row.aggregateid as string}`;
