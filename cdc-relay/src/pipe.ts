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
import { createOutbound, type Outbound, type OutboundOptions, type Outgoing } from './outbound';
import type { WalMessage } from './pgoutput';
import { SessionError, type PublisherPort, type Refusal } from './pipe-types';
import { dropProgress, newTxRecord, storedAt, txKey, type TxProgress, type TxRecord } from './tx-progress';

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
  /** A message sent again after the broker nacked it: a copy the queues that stored it get twice. */
  resent?: () => void;
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
  /** Hold a message while an earlier one of its aggregate is unconfirmed (default true; see RELAY_ORDER_PER_AGGREGATE). */
  orderPerAggregate?: boolean;
  /** Backoff of a message the broker nacked, sent again in the session. */
  retry?: { baseMs: number; capMs: number };
  /** Position the slot already confirmed: nothing at or below it is acknowledged again. */
  acked: bigint;
  /** What the previous session of the source stored of transactions it did not acknowledge (tx-progress.ts). */
  resume?: ReadonlyMap<string, TxProgress>;
  /** Called once, with the first failure. */
  onFail: (err: Error) => void;
  events?: PipeEvents;
  now?: () => number;
};

/** A pipe's state: one per session, changed only by the functions below. */
type PipeState = {
  o: PipeOptions;
  ev: PipeEvents;
  now: () => number;
  tracker: ReturnType<typeof createLsnTracker>;
  // Commit ends and times of transactions not acknowledged yet: the stream's lag, and where a reconcile starts.
  clock: ReturnType<typeof createLagClock>;
  outbound: Outbound;
  acked: bigint;
  txn: TxEntry | undefined;
  /** Transactions not acknowledged, in WAL order from `recHead`: how far each got (tx-progress.ts). */
  records: TxRecord[];
  recHead: number;
  /** Keys of the previous session's progress whose transaction this session began (kept or dropped by it). */
  seenKeys: Set<string>;
  failed: Error | undefined;
  draining: boolean;
  paused: boolean;
  waiters: (() => void)[];
};

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
    paused: () => s.paused,
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

/**
 * The previous session's progress this one did not get to (it ended before the server sent that transaction again,
 * and the transaction is not acknowledged), and this session's own for what it saw and did not acknowledge.
 */
function progress(s: PipeState): Map<string, TxProgress> {
  const out = new Map<string, TxProgress>();
  for (let i = s.recHead; i < s.records.length; i++) {
    const r = s.records[i]!;
    if (r.prefix > 0) out.set(r.key, { stored: r.prefix, lastId: r.lastId, commitLsn: r.commitLsn });
  }
  for (const [key, p] of s.o.resume ?? [])
    if (!s.seenKeys.has(key) && p.commitLsn !== undefined && p.commitLsn >= s.acked) out.set(key, p);
  return out;
}

function toSendAgain(s: PipeState): number {
  let n = s.outbound.sent();
  for (let i = s.recHead; i < s.records.length; i++) {
    const r = s.records[i]!;
    // Stored here, less what the kept prefix covers of it (the prefix also counts rows skipped as stored before).
    n += r.storedHere - Math.max(0, Math.min(r.storedHere, r.prefix - r.skip));
  }
  return n;
}

function sendAck(s: PipeState, lsn: bigint): void {
  while (s.recHead < s.records.length) {
    const end = s.records[s.recHead]!.end;
    if (end === undefined || end > lsn) break;
    s.recHead++;
  }
  if (s.recHead === s.records.length) {
    s.records = [];
    s.recHead = 0;
  } else if (s.recHead > 1024 && s.recHead * 2 > s.records.length) {
    s.records = s.records.slice(s.recHead);
    s.recHead = 0;
  }
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
 * `maxInFlight`), or when as many wait behind an earlier message of their aggregate. Held messages take no room in
 * the window: a hot aggregate, sent one message per confirm, must not stop the others from being read and sent. The
 * two bounds together keep at most 2 × `maxInFlight` messages in memory.
 */
function pauseIfFull(s: PipeState): void {
  const { outbound: out, o } = s;
  if (
    !s.paused &&
    (!o.publisher.writable() || out.sent() + out.waiting() >= o.maxInFlight || out.held() >= o.maxInFlight)
  ) {
    s.paused = true;
    o.wal.pause();
  }
}

function resumeIfRoom(s: PipeState): void {
  const { outbound: out, o } = s;
  const half = Math.max(1, o.maxInFlight / 2);
  if (s.paused && !s.failed && o.publisher.writable() && out.sent() + out.waiting() < half && out.held() < half) {
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

function beginRecord(s: PipeState, xid: number, commitLsn: string | null): TxRecord {
  const key = txKey(xid, commitLsn);
  const previous = s.o.resume?.get(key);
  if (previous) s.seenKeys.add(key);
  return newTxRecord(key, commitLsn ? parseLsn(commitLsn) : undefined, previous);
}

/** A row the previous session stored (tx-progress.ts): taken as stored, not sent; the last one's id must match. */
function skipStored(tx: TxRecord, seq: number, row: Record<string, unknown>): void {
  const id = typeof row.id === 'string' ? row.id : undefined;
  if (seq === tx.skip - 1 && id !== tx.skipId) {
    dropProgress(tx);
    throw new SessionError(
      `transaction ${tx.key} sent again differs from the one a previous session stored (row ${seq} is ${id ?? 'without an id'}, not ${tx.skipId ?? 'without an id'}); sending it whole`,
    );
  }
  storedAt(tx, seq, id);
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
