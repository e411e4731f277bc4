import { startPeriodic } from '@saga/common/runtime/lifecycle';
import type { Logger } from '@saga/common/runtime/logger';
import type pg from 'pg';
import { pruneSettled } from './saga-repository';

/**
 * Every `everyMs`, forget settled sagas (with their events) and dead-letter reports older than `retentionHours`, in
 * batches until a batch comes back short, so the monitor's tables stay as large as the window it is asked about.
 */
export function startPruner(
  pool: pg.Pool,
  log: Logger,
  opts: { retentionHours: number; everyMs: number },
): { stop: () => Promise<void> } {
  let stopped = false;
  const periodic = startPeriodic(opts.everyMs, async () => {
    try {
      for (let more = true; more && !stopped;) {
        const gone = await pruneSettled(pool, opts.retentionHours);
        if (gone.sagas + gone.deadLetters > 0)
          log.info({ ...gone, retentionHours: opts.retentionHours }, 'pruned old sagas');
        more = gone.sagas >= 2000 || gone.deadLetters >= 2000;
      }
    } catch (err) {
      log.warn({ err }, 'could not prune old sagas; will try again');
    }
  });
  return {
    async stop() {
      stopped = true;
      await periodic.stop();
    },
  };
}
