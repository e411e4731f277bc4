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
import type { Options } from 'amqplib';
import type { EncodedMessage } from '@saga/common/messaging/envelope-codec';
import { encodeInvalid } from '@saga/common/messaging/envelope-codec';
import { createLsnTracker, parseLsn, type TxEntry } from './lsn';
import { createLagClock } from './lag';
import type { WalMessage } from './wal-source';

/** The WAL side, as the pipe needs it. */
export type WalPort = {
  /** Stop reading the replication stream (backpressure); what was decoded already is still handled. */
  pause: () => void;
  resume: () => void;
  /** Report `lsn` (an end position) as flushed: the server may drop WAL before it. */
  acknowledge: (lsn: bigint) => void;
};

export type Settled = 'confirmed' | 'refused';

/** The broker side, as the pipe needs it. */
export type PublisherPort = {
  /**
   * Send one message. `settled` is called exactly once: 'confirmed' when the broker acknowledged it and did not
   * return it, 'refused' on a nack, a return or a lost channel. Throws synchronously, having sent nothing, when
   * the client cannot encode the message.
   */
  publish: (
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Options.Publish,
    settled: (s: Settled) => void,
  ) => void;
  /** false while the client's write buffer is full. */
  writable: () => boolean;
};

export type PipeEvents = {
  published?: () => void;
  invalid?: (reason: string, row: Record<string, unknown>) => void;
  refused?: (messageId: string | undefined) => void;
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
  /** Position the slot already confirmed: nothing at or below it is acknowledged again. */
  acked: bigint;
  /** Called once, with the first failure. */
  onFail: (err: Error) => void;
  events?: PipeEvents;
  now?: () => number;
};

export class SessionError extends Error {
  override name = 'SessionError';
}

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

  function send(e: TxEntry, exchange: string, routingKey: string, m: EncodedMessage, invalid: boolean): void {
    tracker.published(e);
    const started = now();
    // The callback keeps only what it needs until the confirm (the id, not the message): thousands of them are
    // alive at a time, and whatever they hold is copied by every young-generation collection meanwhile.
    const id = m.options.messageId;
    o.publisher.publish(exchange, routingKey, m.content, m.options, (s) => {
      if (failed) return;
      if (s === 'refused') {
        ev.refused?.(id);
        fail(
          new SessionError(
            `broker did not store ${invalid ? 'an invalid-queue copy' : 'a message'} (${id ?? 'no id'})`,
          ),
        );
        return;
      }
      ev.confirmSeconds?.((now() - started) / 1000);
      if (!invalid) ev.published?.();
      tracker.confirmed(e);
      if (tracker.inFlight() === 0) wake();
      resumeIfRoom();
    });
  }

  function toInvalid(e: TxEntry, row: Record<string, unknown>, m: EncodedMessage & { ok: false }): void {
    ev.invalid?.(m.reason, row);
    send(e, '', o.invalidQueue, m, true);
  }

  function insert(e: TxEntry, row: Record<string, unknown>): void {
    const m = o.encode(row);
    if (!m.ok) return toInvalid(e, row, m);
    try {
      send(e, o.exchange, m.routingKey, m, false);
    } catch (err) {
      // The client refused to encode it (nothing was sent): the row can never be published as it is.
      tracker.confirmed(e);
      toInvalid(
        e,
        row,
        encodeInvalid(
          row,
          o.source,
          o.table,
          `the AMQP client cannot encode it: ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
    }
  }

  return {
    /** Handle one decoded WAL message. Never throws: a broken rule fails the session. */
    onMessage(msg: WalMessage): void {
      if (failed || draining) return;
      try {
        switch (msg.tag) {
          case 'begin':
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
    paused: () => paused,
  };
}
export type RelayPipe = ReturnType<typeof createRelayPipe>;
