/**
 * The saga monitor is an observer: while it is down its queue (bound to every event) stays at setup's bound, the
 * oldest events dropped, and publishers are never refused or blocked, so the saga goes on without it.
 */
import amqp from 'amqplib';
import { routingKeyOf } from '@saga/common/contracts/catalog';
import { assertConsumerTopology } from '@saga/common/messaging/topology';
import { consumerQueueOf } from '@saga/common/contracts/service-names';
import { ALL_EVENT_TYPES } from '../../services/monitor/src/messaging/handlers';
import { applyQueuePolicies } from '../../scripts/lib/queue-policies';
import { createTestEnv, type TestEnv } from '../support/env';
import { publishOrderConfirmed } from '../support/consumer-harness';
import { waitUntil } from '../support/wait';

const BOUND = 1000;
const EVENTS = 3000;

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('monbound');
});
afterAll(async () => {
  await env?.close();
});

describe('monitor queue bound', () => {
  it('with the monitor down, its queue stays at the bound and every publish is confirmed', async () => {
    const conn = await amqp.connect(env.rabbitUrl);
    let blocked = false;
    conn.on('blocked', () => (blocked = true));
    const ch = await conn.createConfirmChannel();
    try {
      const queue = consumerQueueOf('monitor');
      // The queue as the monitor declares it, then the monitor goes away.
      await assertConsumerTopology(ch, {
        exchange: env.exchange,
        queue,
        routingKeys: ALL_EVENT_TYPES.map(routingKeyOf),
        deliveryLimit: 20,
      });
      await applyQueuePolicies(
        { RABBITMQ_URL: env.rabbitUrl, EVENTS_EXCHANGE: env.exchange, MONITOR_QUEUE_MAX_LENGTH: BOUND },
        () => undefined,
      );
      for (let i = 0; i < EVENTS; i++) {
        publishOrderConfirmed(ch, env.exchange);
        if (i % 500 === 499) await ch.waitForConfirms(); // rejects if the broker refused any
      }
      await ch.waitForConfirms();
      await waitUntil(async () => (await ch.checkQueue(queue)).messageCount === BOUND, {
        message: `the monitor's queue at its bound of ${BOUND}`,
      });
      expect(blocked).toBe(false);
    } finally {
      await conn.close();
    }
  });
});
