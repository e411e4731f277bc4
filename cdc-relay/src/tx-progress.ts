/**
 * How far a session got within each transaction it did not acknowledge, so that the next session does not send
 * again what the broker already stored. A session ends on any error and the next one starts from the slot's
 * confirmed position, the commit of the last transaction acknowledged: without this, a transaction that takes
 * longer to publish than the time between two connection losses would be sent again from its start forever.
 *
 * A transaction sent again by the server is the same one (the same xid and commit position, the same rows in the same
 * order), so a count is enough: its first `stored` outbox rows were all confirmed. The next session takes them as
 * stored without publishing them; the last one's id is checked, and a mismatch fails that session before its
 * transaction can be acknowledged (and drops the progress). Kept in memory only: a new process starts over.
 */

/**
 * What a session leaves for the next one, per transaction (`txKey`); `commitLsn`, the start of its commit record,
 * tells when it is acknowledged (an acknowledged position is past it) and no longer needed.
 */
export type TxProgress = { stored: number; lastId: string | undefined; commitLsn: bigint | undefined };

/** One transaction's record in a session. */
export type TxRecord = {
  key: string;
  commitLsn: bigint | undefined;
  /** Outbox rows seen so far: the next row's position. */
  seq: number;
  /** Rows 0..prefix-1 are stored (confirmed, or stored by an earlier session). */
  prefix: number;
  /** Id of row prefix-1. */
  lastId: string | undefined;
  /** Stored rows past the prefix (a later row confirmed before an earlier one was), by position. */
  ahead: Map<number, string | undefined> | undefined;
  /** Taken as stored from the previous session (not sent): the first `skip` rows, the last one's id `skipId`. */
  skip: number;
  skipId: string | undefined;
  /** Rows this session had stored. */
  storedHere: number;
  /** Commit end, once the commit arrived. */
  end: bigint | undefined;
};

export const txKey = (xid: number, commitLsn: string | null) => `${xid}/${commitLsn ?? ''}`;

export function newTxRecord(key: string, commitLsn: bigint | undefined, previous: TxProgress | undefined): TxRecord {
  return {
    key,
    commitLsn,
    seq: 0,
    prefix: 0,
    lastId: undefined,
    ahead: undefined,
    skip: previous?.stored ?? 0,
    skipId: previous?.lastId,
    storedHere: 0,
    end: undefined,
  };
}

/** Row `seq` (id `id`) of the transaction is stored: the prefix grows over it and whatever was stored after it. */
export function storedAt(r: TxRecord, seq: number, id: string | undefined): void {
  if (seq !== r.prefix) {
    (r.ahead ??= new Map()).set(seq, id);
    return;
  }
  r.prefix++;
  r.lastId = id;
  if (!r.ahead) return;
  while (r.ahead.has(r.prefix)) {
    r.lastId = r.ahead.get(r.prefix);
    r.ahead.delete(r.prefix++);
  }
  if (r.ahead.size === 0) r.ahead = undefined;
}

/** Forget what was kept (the transaction differs from the one recorded). */
export function dropProgress(r: TxRecord): void {
  r.prefix = 0;
  r.ahead = undefined;
  r.skip = 0;
}
