/**
 * Replication lag in seconds, the unit an operator pages on (bytes say how much, not how late).
 *
 * Two views, because each is blind where the other sees:
 * - the stream's: every transaction arrives with its commit time; while some transaction the relay received is not
 *   yet acknowledged (awaiting the broker's confirms), the lag is now minus the commit time of the oldest of them.
 *   It grows while the broker stalls, and sees nothing of WAL the server has not sent yet.
 * - the server's: `pg_stat_replication.flush_lag` of the slot's walsender, the time from the server sending a
 *   transaction to the relay reporting it flushed (acknowledged after the broker's confirm). PostgreSQL measures it
 *   from the relay's status updates and shows NULL once the relay has caught up and nothing new is written (then
 *   0 here), so it also answers when the relay is idle, where the stream has nothing to measure.
 * The gauge reports the larger of the two: both are lower bounds of the true lag.
 */

/**
 * Commit times (µs since the epoch, the server's clock) of received transactions not yet acknowledged, in WAL order,
 * and the commit time of the last one acknowledged (where a reconcile starts after a lost slot). One per session:
 * a new session starts from the slot's position with nothing pending.
 */
export function createLagClock() {
  let pending: { end: bigint; commitUs: bigint }[] = [];
  let head = 0;
  let ackedCommitUs: bigint | undefined;
  return {
    /** A transaction's commit arrived: its end position and commit time. */
    committed(end: bigint, commitUs: bigint): void {
      pending.push({ end, commitUs });
    },
    /** Everything up to `lsn` is acknowledged. */
    acknowledged(lsn: bigint): void {
      while (head < pending.length && pending[head]!.end <= lsn) ackedCommitUs = pending[head++]!.commitUs;
      // Drop the consumed head now and then, so the array does not grow with the session.
      if (head === pending.length) {
        pending = [];
        head = 0;
      } else if (head > 1024) {
        pending = pending.slice(head);
        head = 0;
      }
    },
    /** Commit time of the last transaction acknowledged, if any was. */
    ackedCommitUs: () => ackedCommitUs,
    /** Seconds since the commit of the oldest transaction received and not acknowledged; 0 when none is. */
    streamLagSeconds(nowMs: number): number {
      const oldest = pending[head];
      return oldest ? Math.max(0, nowMs / 1000 - Number(oldest.commitUs) / 1e6) : 0;
    },
  };
}
export type LagClock = ReturnType<typeof createLagClock>;

/**
 * The gauge's value from both views: `streamSeconds` (the relay's stream, see above) and `serverFlushLag` (the
 * walsender's flush_lag in seconds, null when PostgreSQL shows none: caught up, or not measured yet).
 */
export function lagSeconds(streamSeconds: number, serverFlushLag: number | null): number {
  return Math.max(streamSeconds, serverFlushLag ?? 0);
}
