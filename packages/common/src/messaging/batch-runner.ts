/**
 * One batch of AMQP deliveries from screening to acknowledgement: decode and validate each message, apply the valid
 * ones through the service's batch handler (one transaction; one per message when the batch fails), park what
 * failed in the retry or dead-letter queue as the failure policy decides, then acknowledge the batch. Works on a
 * narrow channel port, so it is tested with a fake channel.
 */
import type { ConsumeMessage } from 'amqplib';
import type { Logger } from '../runtime/logger';
import type { BatchHandler } from './batch-handler';
import { createScreening, type Valid } from './batch-screening';
import type { ConsumerMetrics } from './consumer-metrics';
import { decideFailure, type FailurePolicy } from './failure-policy';
import {
  createFailureSettlement,
  DatabaseUnavailableError,
  type ConsumerChannel,
  type FailureSettlement,
} from './failure-settlement';
import type { PublisherTrust } from './publisher-trust';

export { DatabaseUnavailableError, type ConsumerChannel } from './failure-settlement';

export type BatchRunnerOptions = {
  queue: string;
  exchange: string;
  handler: BatchHandler;
  log: Logger;
  metrics: ConsumerMetrics;
  policy: FailurePolicy;
  /** Longest wait for the broker's confirm of a retry or dead-letter copy; past it the batch is not settled. */
  confirmTimeoutMs: number;
  /**
   * The database is unavailable while applying a batch of `channel` (`tries` holds so far): resolve when the batch
   * should be tried again, reject to give it up. Holding keeps the messages unacknowledged on their channel, so they
   * spend neither an attempt nor one of the broker's deliveries (a closed channel would return them, and the quorum
   * queue counts every return against its delivery limit).
   */
  hold: (channel: ConsumerChannel, err: unknown, tries: number) => Promise<void>;
  /** A held batch went through: the database answers again. */
  released: () => void;
  /** Whose events are applied; copies this consumer publishes are signed with its own user (publisher-trust.ts). */
  trust: PublisherTrust;
};

export type BatchRunner = {
  /**
   * Apply and settle `batch` (deliveries of `channel`, in delivery order), then acknowledge it. Rejects, having
   * acknowledged nothing, when the batch could not be settled.
   */
  run: (channel: ConsumerChannel, batch: ConsumeMessage[]) => Promise<void>;
};

export function createBatchRunner(opts: BatchRunnerOptions): BatchRunner {
  const { queue, handler, metrics } = opts;
  const settlement = createFailureSettlement(opts);
  const screen = createScreening({ ...opts, types: handler.types, settlement });
  const apply = createApplier(opts, settlement);

  /** Apply the valid messages; while the database is unavailable, hold what is not settled and try again. */
  async function applyHolding(channel: ConsumerChannel, valid: Valid[]): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        await apply(
          channel,
          valid.filter((v) => !v.settled),
        );
        if (tries > 0) opts.released();
        return;
      } catch (err) {
        if (!(err instanceof DatabaseUnavailableError)) throw err;
        await opts.hold(channel, err.cause, tries);
      }
    }
  }

  return {
    async run(channel, batch) {
      const end = metrics.handling.startTimer({ queue });
      metrics.batchSize.observe({ queue }, batch.length);
      const valid: Valid[] = [];
      for (const msg of batch) {
        const screened = await screen(channel, msg);
        if (screened) valid.push(screened);
      }
      try {
        await applyHolding(channel, valid);
      } finally {
        // A span still open was not settled (the batch goes back to the queue); ending twice is a no-op.
        for (const v of valid) v.span.end('not settled: returned to the queue');
      }
      // Every message up to the last of this batch is settled (batches run one at a time, in delivery order).
      // (Parked ones were acknowledged alone: the multiple ack goes to the last message that was not.)
      const last = batch.findLast((m) => !settlement.isParked(m));
      if (last) channel.ack(last, true);
      end();
    },
  };
}

/**
 * Apply valid messages through the batch handler in one transaction; when the batch fails, one transaction per
 * message, settling each that fails. Throws DatabaseUnavailableError, leaving the batch unsettled, when the database
 * is unreachable.
 */
function createApplier(
  opts: Pick<BatchRunnerOptions, 'queue' | 'handler' | 'log' | 'metrics' | 'policy'>,
  settlement: FailureSettlement,
) {
  const { log, queue, handler, metrics } = opts;

  const applied = (v: Valid, outcome: string) => {
    v.settled = true;
    metrics.messages.inc({ queue, type: v.incoming.type, outcome });
    v.span.end(undefined, { 'saga.outcome': outcome });
  };

  return async function applyValid(channel: ConsumerChannel, valid: Valid[]): Promise<void> {
    if (valid.length === 0) return;
    try {
      const outcomes = await handler.apply(valid.map((v) => v.incoming));
      valid.forEach((v, i) => applied(v, outcomes[i] ?? 'applied'));
    } catch (batchErr) {
      // The database is unreachable: no message is at fault, so none may spend an attempt (a restart of
      // PostgreSQL would otherwise drain the queue into the dead-letter queue). Leave the batch unsettled.
      if (decideFailure(batchErr, 1, opts.policy).kind === 'hold') throw new DatabaseUnavailableError(batchErr);
      if (valid.length > 1)
        log.warn({ err: batchErr, size: valid.length }, 'batch failed; applying its messages one by one');
      for (const v of valid) {
        if (v.settled) continue;
        try {
          if (valid.length === 1) throw batchErr;
          const [outcome] = await handler.apply([v.incoming]);
          applied(v, outcome ?? 'applied');
        } catch (err) {
          await settlement.settleFailure(channel, v.msg, err, v.incoming.log, v.span);
          v.settled = true;
        }
      }
    }
  };
}
