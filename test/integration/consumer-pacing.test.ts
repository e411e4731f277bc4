/**
 * Batch pacing against a real broker (CONSUMER_BATCH_INTERVAL_MS): a message after a quiet spell is applied at once,
 * messages that keep coming are gathered into one batch, a full batch starts without waiting for the interval, and
 * a batch being gathered is applied when the consumer stops. The interval here is far longer than the test may take,
 * so any wait for it would time the test out: what the test sees is decided by the rule, not by the clock.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { Registry } from 'prom-client';
import { createConsumer, type Consumer } from '@saga/common/messaging/consumer';
import type { Incoming } from '@saga/common/messaging/batch-handler';
import { createLogger } from '@saga/common/runtime/logger';
import { publishOrderConfirmed } from '../support/consumer-harness';
import { createTestEnv, type TestEnv } from '../support/env';
import { waitUntil } from '../support/wait';

let env: TestEnv;
let conn: amqp.ChannelModel;
let ch: amqp.ConfirmChannel;
const QUEUE = 'pacing';
/** Order id -> the name the test gave its message. */
const names = new Map<string, string>();

beforeAll(async () => {
  env = await createTestEnv('pacing');
  conn = await amqp.connect(env.rabbitUrl);
  ch = await conn.createConfirmChannel();
});
afterAll(async () => {
  await conn?.close().catch(() => undefined);
  await env?.close();
});

/** An OrderConfirmed event as the relay publishes it, named by its order id. */
function publish(name: string): void {
  const orderId = randomUUID();
  names.set(orderId, name);
  publishOrderConfirmed(ch, env.exchange, { orderId });
}

describe('consumer batch pacing', () => {
  it('applies a lone message at once, a full batch at once, and gathers the rest until the interval or the stop', async () => {
    const batches: string[][] = [];
    const consumer: Consumer = createConsumer({
      url: env.rabbitUrl,
      exchange: env.exchange,
      queue: QUEUE,
      handler: {
        types: ['OrderConfirmed'],
        apply: async (messages: Incoming[]) => {
          batches.push(messages.map((m) => names.get(m.data.orderId) ?? '?'));
          return messages.map(() => 'applied' as const);
        },
      },
      log: createLogger('pacing-test', 'warn'),
      registry: new Registry(),
      prefetch: 20,
      maxBatch: 5,
      batchIntervalMs: 600_000,
    });
    consumer.start();
    try {
      await waitUntil(() => consumer.isReady(), { message: 'consuming' });

      // After a quiet spell: applied at once, alone.
      publish('a');
      await ch.waitForConfirms();
      await waitUntil(() => batches.length === 1, {
        message: 'the lone message applied without waiting for the interval',
      });

      // b and c reach the consumer and are gathered: the interval has not passed since a's batch.
      const delivered = () =>
        waitUntil(async () => (await ch.checkQueue(QUEUE)).messageCount === 0, {
          message: 'delivered to the consumer',
        });
      for (const n of ['b', 'c']) publish(n);
      await ch.waitForConfirms();
      await delivered();
      // d, e and f fill the batch of five, which starts at once (with no pacing, b and c would have gone alone).
      for (const n of ['d', 'e', 'f']) publish(n);
      await ch.waitForConfirms();
      await waitUntil(() => batches.length >= 2, {
        message: 'the full batch applied without waiting for the interval',
      });
      expect(batches[1]).toEqual(['b', 'c', 'd', 'e', 'f']);

      // g and h wait for the interval; stopping applies them as one batch and acknowledges everything.
      for (const n of ['g', 'h']) publish(n);
      await ch.waitForConfirms();
      await delivered();
      expect(batches).toHaveLength(2);
    } finally {
      await consumer.stop();
    }
    expect(batches).toEqual([['a'], ['b', 'c', 'd', 'e', 'f'], ['g', 'h']]);
    const q = await ch.checkQueue(QUEUE);
    expect(q.messageCount).toBe(0);
  });
});
