/**
 * A service's consumer, composed of its parts: the AMQP session (consumer-session.ts) delivers into the batching
 * pump (consumer-pump.ts), which hands batches to the batch runner (batch-runner.ts: screen in batch-screening.ts,
 * apply through the service's batch handler, park failures as failure-policy.ts decides in failure-settlement.ts,
 * acknowledge).
 */
import type { Registry } from 'prom-client';
import type { Logger } from '../runtime/logger';
import type { BatchHandler } from './batch-handler';
import { createBatchRunner } from './batch-runner';
import { createConsumerMetrics } from './consumer-metrics';
import { createConsumerSession } from './consumer-session';
import { publisherTrust, type PublisherTrust } from './publisher-trust';

export type ConsumerOptions = {
  url: string;
  exchange: string;
  /** `<service>.<purpose>`: one durable quorum queue per consumer. */
  queue: string;
  handler: BatchHandler;
  log: Logger;
  registry: Registry;
  /** Unacknowledged messages in flight at once. */
  prefetch?: number;
  /** Most messages applied in one transaction (at most `prefetch`). */
  maxBatch?: number;
  /**
   * Shortest time between the starts of two batches that are not full. A message that arrives after a quiet spell
   * is applied at once; messages that keep coming are gathered into one batch per interval instead of a
   * transaction each; a full batch (`maxBatch`) starts without waiting. 0 starts every batch at once.
   */
  batchIntervalMs?: number;
  /** Tries of a transiently failing message before it is dead-lettered. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to 30 s. */
  retryBaseMs?: number;
  /** Longest wait for the broker's confirm of a retry or dead-letter copy (a queue without quorum never confirms). */
  confirmTimeoutMs?: number;
  /** Whose events are applied (publisher-trust.ts); by default the user of `url`. */
  trust?: PublisherTrust;
};

/** The work queue's x-delivery-limit (the value earlier versions derived from the default of 5 attempts). */
export const DELIVERY_LIMIT = 20;

export type Consumer = { start: () => void; stop: () => Promise<void>; isReady: () => boolean };

/**
 * Consume the events a service handles from its own queue, with reconnects (capped exponential backoff),
 * bounded prefetch, retry with backoff for transient failures and a dead-letter queue (reason in the headers)
 * for what can never succeed.
 *
 * Messages are applied in batches, one at a time and in delivery order: what arrived while the previous batch
 * committed (up to `maxBatch`) goes into one transaction, so a busy consumer pays one commit for many messages and
 * per-aggregate order is never weaker than the queue's. When a batch fails, its messages are applied one per
 * transaction, so one poison message cannot hold back its neighbours. Every message of a batch is settled
 * (committed, or stored in the retry or dead-letter queue) before one acknowledgement covers them all.
 */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const prefetch = opts.prefetch ?? 64;
  const maxAttempts = opts.maxAttempts ?? 5;
  const metrics = createConsumerMetrics(opts.registry);
  const policy = { maxAttempts, retryBaseMs: opts.retryBaseMs ?? 500 };
  return createConsumerSession({
    url: opts.url,
    exchange: opts.exchange,
    queue: opts.queue,
    types: opts.handler.types,
    log: opts.log,
    prefetch,
    maxBatch: Math.min(opts.maxBatch ?? prefetch, prefetch),
    batchIntervalMs: opts.batchIntervalMs ?? 0,
    // Not derived from maxAttempts: a queue argument cannot change on an existing queue, and the limit only catches
    // a message that keeps crashing the process before it is acknowledged (failures never spend deliveries).
    deliveryLimit: DELIVERY_LIMIT,
    runner: (ports) =>
      createBatchRunner({
        queue: opts.queue,
        exchange: opts.exchange,
        handler: opts.handler,
        log: opts.log,
        metrics,
        policy,
        confirmTimeoutMs: opts.confirmTimeoutMs ?? 10_000,
        trust: opts.trust ?? publisherTrust({ url: opts.url, exchange: opts.exchange }),
        ...ports,
      }),
  });
}
