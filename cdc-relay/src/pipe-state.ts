/**
 * The pipe's options and state, and its records of the transactions it has not acknowledged: how far each got, so
 * that a later session can skip what the broker already stored (tx-progress.ts). Apart from pipe.ts, which holds the
 * rules, to keep each file small.
 */
import type { EncodedMessage } from '@saga/common/messaging/envelope-codec';
import { parseLsn, type createLsnTracker, type TxEntry } from './lsn';
import type { createLagClock } from './lag';
import type { Outbound } from './outbound';
import { SessionError, type PublisherPort, type Refusal } from './pipe-types';
import { dropProgress, newTxRecord, storedAt, txKey, type TxProgress, type TxRecord } from './tx-progress';

/** The WAL side, as the pipe needs it. */
export type WalPort = {
  /** Stop reading the replication stream (backpressure); what was decoded already is still handled. */
  pause: () => void;
  resume: () => void;
  /** Report `lsn` (an end position) as flushed: the server may drop WAL before it. */
  acknowledge: (lsn: bigint) => void;
};

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
export type PipeState = {
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
  /** Why reading is paused: the window's or the holds' bound, or the client's write buffer; false when reading. */
  paused: false | 'bounds' | 'buffer';
  waiters: (() => void)[];
};

/**
 * The previous session's progress this one did not get to (it ended before the server sent that transaction again,
 * and the transaction is not acknowledged), and this session's own for what it saw and did not acknowledge.
 */
export function progress(s: PipeState): Map<string, TxProgress> {
  const out = new Map<string, TxProgress>();
  for (let i = s.recHead; i < s.records.length; i++) {
    const r = s.records[i]!;
    if (r.prefix > 0) out.set(r.key, { stored: r.prefix, lastId: r.lastId, commitLsn: r.commitLsn });
  }
  for (const [key, p] of s.o.resume ?? [])
    if (!s.seenKeys.has(key) && p.commitLsn !== undefined && p.commitLsn >= s.acked) out.set(key, p);
  return out;
}

export function toSendAgain(s: PipeState): number {
  let n = s.outbound.sent();
  for (let i = s.recHead; i < s.records.length; i++) {
    const r = s.records[i]!;
    // Stored here, less what the kept prefix covers of it (the prefix also counts rows skipped as stored before).
    n += r.storedHere - Math.max(0, Math.min(r.storedHere, r.prefix - r.skip));
  }
  return n;
}

/** Forget the records of transactions acknowledged through `lsn` (their progress matters no more). */
export function dropAcknowledged(s: PipeState, lsn: bigint): void {
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
}

export function beginRecord(s: PipeState, xid: number, commitLsn: string | null): TxRecord {
  const key = txKey(xid, commitLsn);
  const previous = s.o.resume?.get(key);
  if (previous) s.seenKeys.add(key);
  return newTxRecord(key, commitLsn ? parseLsn(commitLsn) : undefined, previous);
}

/** A row the previous session stored (tx-progress.ts): taken as stored, not sent; the last one's id must match. */
export function skipStored(tx: TxRecord, seq: number, row: Record<string, unknown>): void {
  const id = typeof row.id === 'string' ? row.id : undefined;
  if (seq === tx.skip - 1 && id !== tx.skipId) {
    dropProgress(tx);
    throw new SessionError(
      `transaction ${tx.key} sent again differs from the one a previous session stored (row ${seq} is ${id ?? 'without an id'}, not ${tx.skipId ?? 'without an id'}); sending it whole`,
    );
  }
  storedAt(tx, seq, id);
}
