import { Counter, Histogram, type Registry } from 'prom-client';
import { isEventType } from '../contracts/catalog';

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;

/** A consumer's metrics, labelled by queue. */
export function createConsumerMetrics(registry: Registry) {
  return {
    messages: new Counter({
      name: 'consumer_messages_total',
      help: 'Messages handled, by event type and outcome (applied, duplicate, ignored, retried, dead_lettered); types outside the catalogue count as unknown',
      labelNames: ['queue', 'type', 'outcome'] as const,
      registers: [registry],
    }),
    handling: new Histogram({
      name: 'consumer_batch_seconds',
      help: 'Time to apply and settle one batch of messages',
      labelNames: ['queue'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'consumer_batch_size',
      help: 'Messages per batch (one transaction when it succeeds)',
      labelNames: ['queue'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
  };
}

/** A label value must come from a known list: any sender can set a message's type. */
export const typeLabel = (type: unknown) => (typeof type === 'string' && isEventType(type) ? type : 'unknown');
