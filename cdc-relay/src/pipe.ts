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
import { encodeInvalid } from '@saga/common/messaging/envelope-codec';
import { createLsnTracker, parseLsn, type TxEntry } from './lsn';
import {
  beginRecord,
  dropAcknowledged,
  progress,
  skipStored,
  toSendAgain,
  type PipeOptions,
  type PipeState,
} from './pipe-state';
import { createLagClock } from './lag';
import { createOutbound, type OutboundOptions, type Outgoing } from './outbound';
import type { WalMessage } from './pgoutput';
import { SessionError } from './pipe-types';
import { storedAt } from './tx-progress';

export { SessionError } from './pipe-types';
export type { PublisherPort, Refusal, Settled } from './pipe-types';
export type { PipeEvents, PipeOptions, WalPort } from './pipe-state';

/** A pause for full bounds ends when what they count falls below this share of them. */
const RESUME_AT = 0.9;
/** The invalid-queue copy of a row the broker refused is cut to this: the refusal may have been for its size. */
const REFUSED_COPY_LIMITS = { maxBodyBytes: 64 * 1024, maxHeaderBytes: 16 * 1024 };

export function createRelayPipe(o: PipeOptions) {
  const s = {
    o,
    ev: o.events ?? {},
    now: o.now ?? (() => performance.now()),
    tracker: createLsnTracker(),
    clock: createLagClock(),
    acked: o.acked,
    txn: undefined,
    records: [],
    recHead: 0,
    seenKeys: new Set(),
    failed: undefined,
    draining: false,
    paused: false,
    waiters: [],
  } as Omit<PipeState, 'outbound'> as PipeState;
  s.outbound = createOutbound(outboundOptions(s));
  return {
    /** Handle one decoded WAL message. Never throws: a broken rule fails the session. */
    onMessage: (msg: WalMessage) => onMessage(s, msg),
    /**
     * A server keepalive at `walEnd`. With nothing open and nothing awaiting a confirm, the slot may move past WAL
     * of other tables (so a quiet outbox does not make the server keep WAL); never mid-transaction, never after a
     * failure, never while draining.
     */
    onKeepalive(walEnd: bigint, shouldRespond: boolean): void {
      if (s.failed) return;
      flushAck(s);
      if (!s.draining && s.txn === undefined && s.tracker.idle() && walEnd > s.acked) return sendAck(s, walEnd);
      if (shouldRespond) o.wal.acknowledge(s.acked);
    },
    flushAck: () => flushAck(s),
    /**
     * The session is over: whatever settles from now on is ignored (not counted as a refusal) and nothing more is
     * acknowledged. Does not report a failure.
     */
    close(): void {
      s.outbound.close();
      if (s.failed) return;
      s.failed = new SessionError('session closed');
      wake(s);
    },
    /** Room again in the client's buffer. */
    onWritable: () => resumeIfRoom(s),
    fail: (err: Error) => fail(s, err),
    /** Stop handling messages; wait until every published message settled, a failure, or the deadline; acknowledge. */
    drain: (deadlineMs: number) => drain(s, deadlineMs),
    acked: () => s.acked,
    /** Commit time (µs since the epoch) of the last acknowledged transaction this session saw, if any. */
    ackedCommitTimeUs: () => s.clock.ackedCommitUs(),
    /** The stream's view of the lag (lag.ts): since the commit of the oldest transaction not acknowledged. */
    streamLagSeconds: (nowMs: number) => s.clock.streamLagSeconds(nowMs),
    failed: () => s.failed,
    inFlight: () => s.tracker.inFlight(),
    /** The outbound window now (1 while sending one at a time). */
    window: () => s.outbound.window(),
    paused: () => s.paused !== false,
    /** For the next session: the stored prefix of each transaction not acknowledged (tx-progress.ts). */
    progress: () => progress(s),
    /**
     * Messages this session sent of transactions it did not acknowledge, past the progress it keeps: after a failure
     * the next session sends them again, copies a queue may already hold.
     */
    toSendAgain: () => toSendAgain(s),
  };
}
export type RelayPipe = ReturnType<typeof createRelayPipe>;

function wake(s: PipeState): void {
  const w = s.waiters;
  s.waiters = [];
  for (const f of w) f();
}

function fail(s: PipeState, err: Error): void {
  if (s.failed) return;
  s.failed = err;
  wake(s);
  s.o.onFail(err);
}

function sendAck(s: PipeState, lsn: bigint): void {
  dropAcknowledged(s, lsn);
  s.acked = lsn;
  s.clock.acknowledged(lsn);
  s.o.wal.acknowledge(lsn);
  s.ev.acknowledged?.(lsn, s.clock.ackedCommitUs());
}

/** Acknowledge what the tracker allows; never after a failure. */
function flushAck(s: PipeState): void {
  if (s.failed) return;
  const a = s.tracker.ackable();
  if (a !== undefined && a > s.acked) sendAck(s, a);
}

/**
 * Reading the WAL pauses when the window is asked for more than it carries (messages in flight and free to go reach
 * `maxInFlight`), when as many wait behind an earlier message of their aggregate, or when the client's write buffer
 * is full. Held messages take no room in the window: a hot aggregate, sent one message per confirm, must not stop the
 * others from being read and sent. The two bounds together keep at most 2 × `maxInFlight` messages in memory.
 *
 * A full window or hold resumes when more than a tenth of it is free (below RESUME_AT of it; one free slot when
 * `maxInFlight` is 10 or less), not at half: the broker works through what it holds while reading catches up, and at
 * half it was left with 5,000 of the 10,000 messages a plain publisher keeps it busy with (decision 0015). A full
 * write buffer alone resumes as soon as it drains, with the bounds not full: one network chunk of WAL publishes more
 * messages than amqplib's buffer holds (1,024) before they are written out. A pause for the buffer becomes one for
 * the bounds when those fill while it lasts (the rest of that chunk is still handled).
 */
function pauseIfFull(s: PipeState): void {
  if (s.paused === 'bounds') return;
  const { outbound: out, o } = s;
  if (out.sent() + out.waiting() >= o.maxInFlight || out.held() >= o.maxInFlight) {
    if (!s.paused) o.wal.pause();
    s.paused = 'bounds';
  } else if (!s.paused && !o.publisher.writable()) {
    s.paused = 'buffer';
    o.wal.pause();
  }
}

function resumeIfRoom(s: PipeState): void {
  const { outbound: out, o } = s;
  if (!s.paused || s.failed || !o.publisher.writable()) return;
  const bound = s.paused === 'bounds' ? Math.max(1, o.maxInFlight * RESUME_AT) : o.maxInFlight;
  if (out.sent() + out.waiting() < bound && out.held() < bound) {
    s.paused = false;
    o.wal.resume();
  }
}

function outboundOptions(s: PipeState): OutboundOptions {
  const { o, ev } = s;
  return {
    publisher: o.publisher,
    maxInFlight: o.maxInFlight,
    startWindow: o.startWindow ?? o.maxInFlight,
    isolateThrough: o.isolateThrough,
    retry: o.retry ?? { baseMs: 250, capMs: 10_000 },
    now: s.now,
    failed: () => s.failed !== undefined,
    fail: (err) => fail(s, err),
    stored(x) {
      ev.confirmSeconds?.((s.now() - x.started!) / 1000);
      if (!x.invalid) ev.published?.();
      if (x.tx) {
        x.tx.storedHere++;
        storedAt(x.tx, x.seq, typeof x.row.id === 'string' ? x.row.id : undefined);
      }
      s.tracker.confirmed(x.e);
      if (s.tracker.inFlight() === 0) wake(s);
      resumeIfRoom(s);
    },
    toInvalid(x, reason) {
      ev.invalid?.(reason, x.row);
      x.m = encodeInvalid(x.row, o.source, o.table, reason, REFUSED_COPY_LIMITS);
      x.exchange = '';
      x.routingKey = o.invalidQueue;
      x.invalid = true;
    },
    refused: (x, why) => ev.refused?.(x.m.options.messageId, why),
    resent: () => ev.resent?.(),
  };
}

function insert(s: PipeState, e: TxEntry, row: Record<string, unknown>): void {
  const { o } = s;
  const tx = s.records[s.records.length - 1]!;
  const seq = tx.seq++;
  if (seq < tx.skip) return skipStored(tx, seq, row);
  const m = o.encode(row);
  s.tracker.published(e);
  const x: Outgoing = {
    e,
    row,
    m,
    exchange: o.exchange,
    routingKey: '',
    invalid: false,
    key: undefined,
    attempts: 0,
    tx,
    seq,
  };
  if (m.ok) {
    x.routingKey = m.routingKey;
    if (o.orderPerAggregate !== false) x.key = aggregateKey(row);
  } else {
    s.ev.invalid?.(m.reason, row);
    x.exchange = '';
    x.routingKey = o.invalidQueue;
    x.invalid = true;
  }
  s.outbound.submit(x);
}

function onMessage(s: PipeState, msg: WalMessage): void {
  if (s.failed || s.draining) return;
  try {
    switch (msg.tag) {
      case 'begin':
        // An open transaction that never commits would hold every later acknowledgement back for good.
        if (s.txn) throw new SessionError('begin inside an open transaction');
        s.txn = s.tracker.begin();
        s.records.push(beginRecord(s, msg.xid, msg.commitLsn));
        break;
      case 'insert':
        if (msg.relation.name !== s.o.table) break;
        // An entry opened here would never see its commit and would hold acknowledgements back for good.
        if (!s.txn) throw new SessionError('insert outside a transaction');
        insert(s, s.txn, msg.new);
        pauseIfFull(s);
        break;
      case 'commit': {
        // Acknowledge with the commit's end: the LSN of other messages is unreliable.
        if (!s.txn) throw new SessionError('commit outside a transaction');
        if (!msg.commitEndLsn) throw new SessionError('commit without an end position');
        const end = parseLsn(msg.commitEndLsn);
        s.records[s.records.length - 1]!.end = end;
        s.tracker.commit(s.txn, end);
        s.clock.committed(end, BigInt(msg.commitTime as bigint));
        s.txn = undefined;
        break;
      }
      case 'undecodable':
        throw new SessionError(`replication message could not be decoded: ${msg.error.message}`);
      default:
        break;
    }
  } catch (err) {
    fail(s, err instanceof Error ? err : new Error(String(err)));
  }
}

async function drain(s: PipeState, deadlineMs: number): Promise<void> {
  s.draining = true;
  while (!s.failed && s.tracker.inFlight() > 0 && Date.now() < deadlineMs) {
    await new Promise<void>((resolve) => {
      s.waiters.push(resolve);
      setTimeout(resolve, 100).unref?.();
    });
  }
  flushAck(s);
}

/** The aggregate a row's order is kept within: its type and id (strings, as the codec checked). */
const aggregateKey = (row: Record<string, unknown>) =>
  `${row.aggregatetype as string}\u0000${row.aggregateid as string}`;
