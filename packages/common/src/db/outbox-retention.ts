/**
 * Outbox retention: each service deletes its own outbox rows once they are older than the retention window, in
 * batches, on a timer. The rows are kept at all because the WAL is not a durable copy of them for the relay: a
 * database failover (logical slots are not on the standby before PostgreSQL 17) or a slot invalidated by
 * max_slot_wal_keep_size loses the relay's position, and `npm run relay -- reconcile` then republishes the window
 * from the table. The window must be longer than the time an operator needs to notice and act.
 */
import { startPeriodic } from '../runtime/lifecycle';
import type { Logger } from '../runtime/logger';
import { pruneOutbox } from './outbox';
import { type SqlClient } from './sql';

export type OutboxRetention = {
  retentionHours: number;
  /** How often a round of pruning runs. */
  everyMs: number;
  /** Rows per DELETE. */
  batch?: number;
  /**
   * Most batches per round: a backlog (retention shortened, service down for days) is worked off over several rounds
   * instead of one long burst of deletes competing with the write path.
   */
  maxBatchesPerRound?: number;
};

/**
 * One round: delete full batches until a batch comes back short, the round's budget is spent or `stopped()` says
 * the service is stopping (a round of a backlog must not hold a shutdown up). Answers the rows.
 */
export async function pruneOutboxRound(
  c: SqlClient,
  o: Pick<OutboxRetention, 'retentionHours' | 'batch' | 'maxBatchesPerRound'>,
  stopped: () => boolean = () => false,
): Promise<number> {
  const batch = o.batch ?? 5000;
  let total = 0;
  for (let i = 0; i < (o.maxBatchesPerRound ?? 20) && !stopped(); i++) {
    const n = await pruneOutbox(c, o.retentionHours, batch);
    total += n;
    if (n < batch) break;
  }
  return total;
}

/** Prune every `everyMs` until stopped; a failed round (database away) is logged and tried again next time. */
export function startOutboxPruner(pool: SqlClient, log: Logger, o: OutboxRetention): { stop: () => Promise<void> } {
  let stopped = false;
  const rounds = startPeriodic(o.everyMs, async () => {
    try {
      const pruned = await pruneOutboxRound(pool, o, () => stopped);
      if (pruned > 0) log.info({ pruned, retentionHours: o.retentionHours }, 'pruned old outbox rows');
    } catch (err) {
      log.warn({ err }, 'could not prune old outbox rows; will try again');
    }
  });
  return {
    async stop() {
      stopped = true; // a round under way ends after its current batch
      await rounds.stop();
    },
  };
}
