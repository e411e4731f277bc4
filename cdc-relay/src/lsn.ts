/**
 * LSNs as 64-bit numbers. PostgreSQL and pg-logical-replication print them in two formats (`0/1569FA8`,
 * `00000000/01569FA8`): never compare them as strings.
 */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** One decoded transaction: how many of its messages still await the broker's confirm, and where it ends. */
export type TxEntry = { pending: number; commitEndLsn: bigint | undefined };

/**
 * Tracks transactions in WAL order and answers the highest LSN that is safe to acknowledge: the commit end of a
 * transaction all of whose messages, and all earlier transactions' messages, were confirmed by the broker.
 * Acknowledging any further would let a crash lose published-but-unconfirmed messages
 * (cf. pg-transactional-outbox's acknowledge-manager).
 */
export function createLsnTracker() {
  const queue: TxEntry[] = [];
  let head = 0;
  let ackable: bigint | undefined;
  let inFlight = 0;

  function advance(): void {
    while (head < queue.length) {
      const e = queue[head]!;
      if (e.commitEndLsn === undefined || e.pending > 0) break;
      ackable = e.commitEndLsn;
      head++;
    }
    // Drop settled entries in batches so the array does not grow without bound.
    if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
  }

  return {
    /** A transaction began: subsequent messages belong to it until `commit`. */
    begin(): TxEntry {
      const e: TxEntry = { pending: 0, commitEndLsn: undefined };
      queue.push(e);
      return e;
    },
    published(e: TxEntry): void {
      e.pending++;
      inFlight++;
    },
    confirmed(e: TxEntry): void {
      if (e.pending <= 0) throw new Error('confirm for a transaction with nothing pending');
      e.pending--;
      inFlight--;
      if (e.pending === 0) advance();
    },
    commit(e: TxEntry, commitEndLsn: bigint): void {
      e.commitEndLsn = commitEndLsn;
      advance();
    },
    /** Highest LSN safe to acknowledge, or undefined when none yet. */
    ackable: () => ackable,
    /** Messages published and not yet confirmed. */
    inFlight: () => inFlight,
    /** No transaction open or waiting for confirms. */
    idle: () => head === queue.length,
  };
}
export type LsnTracker = ReturnType<typeof createLsnTracker>;
