/**
 * A consumer whose links break in the ways networks and operators break them: a database link that goes silent
 * (half-open: no FIN, no RST), a queue deleted under it. It goes not ready, reconnects, and loses nothing.
 */
import amqp from 'amqplib';
import { consumerQueueNames } from '@saga/common/messaging/topology';
import type { TestEnv } from '../support/env';
import {
  appliedCount,
  closeProxiedInventory,
  INVENTORY_QUEUE,
  inventoryConsumer,
  openProxiedInventory,
  publishOrderConfirmed,
  queueDepth,
} from '../support/consumer-harness';
import { startTcpProxyFor, throughProxy, type TcpProxy } from '../support/tcp-proxy';
import { waitUntil } from '../support/wait';
import { settleWithin } from '@saga/common/runtime/settle';

let env: TestEnv;
let conn: amqp.ChannelModel;
let ch: amqp.ConfirmChannel;
let proxy: TcpProxy;
const names = consumerQueueNames(INVENTORY_QUEUE);

beforeAll(async () => {
  ({ env, conn, ch, proxy } = await openProxiedInventory('links'));
});
afterAll(() => closeProxiedInventory({ env, conn, proxy }));

const publish = async (n: number) => {
  const ids = Array.from({ length: n }, () => publishOrderConfirmed(ch, env.exchange));
  await ch.waitForConfirms();
  return ids;
};

/** An inventory consumer whose broker link goes through a proxy of the test's; both stopped after `body`. */
async function behindBrokerProxy(
  body: (c: ReturnType<typeof inventoryConsumer>, amqpProxy: TcpProxy) => Promise<void>,
  opts: Parameters<typeof inventoryConsumer>[2] = {},
): Promise<void> {
  const amqpProxy = await startTcpProxyFor(env.rabbitUrl);
  const c = inventoryConsumer(env, env.serviceUrl('inventory'), {
    ...opts,
    url: throughProxy(env.rabbitUrl, amqpProxy),
  });
  try {
    await body(c, amqpProxy);
  } finally {
    await c.stop();
    await amqpProxy.close();
  }
}

describe('consumer links', () => {
  it('a half-open database link: not ready, reconnects, loses nothing', async () => {
    const c = inventoryConsumer(env, throughProxy(env.serviceUrl('inventory'), proxy));
    c.consumer.start();
    try {
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      const before = await publish(10);
      await waitUntil(async () => (await appliedCount(env, before)) === 10, { message: 'applied before the fault' });
      const accepted = proxy.accepted();
      proxy.blackhole();
      const during = await publish(20);
      await waitUntil(() => !c.consumer.isReady(), { message: 'not ready on a silent database link' });
      proxy.restore();
      await waitUntil(async () => (await appliedCount(env, during)) === 20, {
        message: 'everything applied over a new connection',
      });
      expect(proxy.accepted()).toBeGreaterThan(accepted);
      await waitUntil(() => c.consumer.isReady(), { message: 'ready again' });
      expect(await queueDepth(ch, names.dlq)).toBe(0);
      expect(await queueDepth(ch, names.retry)).toBe(0);
    } finally {
      await c.stop();
    }
  });

  it('dead-letters a message whose header values cannot be encoded again as a sanitized copy, and goes on', async () => {
    const c = inventoryConsumer(env, env.serviceUrl('inventory'));
    c.consumer.start();
    try {
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      // A double amqplib decodes but cannot encode again (it takes a whole number for an int64, and this one is out
      // of range). A NaN double is the other such value, but RabbitMQ itself refuses it: publishing one made the
      // broker close the publishing connection (541 INTERNAL_ERROR) in our runs.
      const bad = { '!': 'double', value: -1e19 };
      ch.publish(env.exchange, 'order.OrderConfirmed', Buffer.from('{not json'), {
        messageId: 'unencodable-headers',
        type: 'OrderConfirmed',
        persistent: true,
        headers: { correlationId: bad, 'x-anything': bad },
      });
      const good = await publish(1);
      await waitUntil(async () => (await queueDepth(ch, names.dlq)) === 1, {
        timeoutMs: 15_000,
        message: 'the message in the dead-letter queue',
      });
      await waitUntil(async () => (await appliedCount(env, good)) === 1, { message: 'the next message applied' });
      const parked = await ch.get(names.dlq, { noAck: true });
      expect(parked && parked.properties.messageId).toBe('unencodable-headers');
      const h = (parked as amqp.GetMessage).properties.headers ?? {};
      expect(h['x-dead-letter-reason']).toBe('invalid');
      expect(h['x-dead-lettered-by']).toBe(INVENTORY_QUEUE);
      expect(Object.keys(h)).not.toEqual(expect.arrayContaining(['x-anything']));
      expect(c.consumer.isReady()).toBe(true);
    } finally {
      await c.stop();
    }
  });

  it('a queue deleted under a running consumer: not ready, redeclared, consuming again', async () => {
    const c = inventoryConsumer(env, env.serviceUrl('inventory'));
    c.consumer.start();
    try {
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      await ch.deleteQueue(INVENTORY_QUEUE);
      await waitUntil(() => !c.consumer.isReady(), { message: 'not ready once the broker cancelled it' });
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming again' });
      const ids = await publish(5);
      await waitUntil(async () => (await appliedCount(env, ids)) === 5, { message: 'applied from the new queue' });
    } finally {
      await c.stop();
    }
  });

  it('a queue that exists with other arguments is used as it is', async () => {
    await ch.deleteQueue(INVENTORY_QUEUE);
    // As an earlier version with another CONSUMER_MAX_ATTEMPTS declared it.
    await ch.assertQueue(INVENTORY_QUEUE, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 7 },
    });
    const c = inventoryConsumer(env, env.serviceUrl('inventory'), { maxAttempts: 9 });
    c.consumer.start();
    try {
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming from the existing queue' });
      const ids = await publish(5);
      await waitUntil(async () => (await appliedCount(env, ids)) === 5, { message: 'applied' });
    } finally {
      await c.stop();
    }
  });

  it('a stop during a reconnect: the session that connects after it closes without consuming', async () => {
    await behindBrokerProxy(async (c, amqpProxy) => {
      c.consumer.start();
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      const before = amqpProxy.accepted();
      amqpProxy.stall(); // the link is lost; the reconnect's connection waits on a slow network
      await waitUntil(() => amqpProxy.accepted() > before, { message: 'reconnecting' });
      const stopping = c.consumer.stop();
      amqpProxy.restore(); // the reconnect completes after the stop
      await settleWithin(stopping, 10_000, 'stop during a reconnect');
      await waitUntil(async () => (await ch.checkQueue(INVENTORY_QUEUE)).consumerCount === 0, {
        message: 'no consumer left on the queue',
      });
    });
  });

  it('a stop while the broker never answers the handshake returns without waiting for the connect bound', async () => {
    await behindBrokerProxy(async (c, amqpProxy) => {
      amqpProxy.blackhole(); // the connection is accepted and never answered
      c.consumer.start();
      await waitUntil(() => amqpProxy.accepted() > 0, { message: 'connecting' });
      // The connect's own bound is 15 s, as long as a whole shutdown: the stop must not wait for it.
      await settleWithin(c.consumer.stop(), 5_000, 'stop during a silent handshake');
      expect(c.consumer.isReady()).toBe(false);
    });
  });

  it('a stop on a silent broker link (no FIN, no RST) gives the link up instead of waiting for the heartbeat', async () => {
    await behindBrokerProxy(async (c, amqpProxy) => {
      c.consumer.start();
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      amqpProxy.blackhole(); // the broker answers neither the cancel nor the close
      await settleWithin(c.consumer.stop(), 10_000, 'stop on a silent link');
      expect(c.consumer.isReady()).toBe(false);
    });
  });

  it('a batch given up on a silent broker link ends the session: not ready, then reconnected', async () => {
    let release!: () => void;
    const entered = new Promise<void>((r) => (release = r));
    let open!: () => void;
    let gate: Promise<void> | undefined = new Promise<void>((r) => (open = r));
    let appliedOnce = 0;
    const opts: Parameters<typeof inventoryConsumer>[2] = {
      confirmTimeoutMs: 1000,
      handler: {
        types: ['OrderConfirmed'],
        apply: async (messages) => {
          if (gate) {
            const g = gate;
            gate = undefined;
            release();
            await g;
            throw new Error('transient'); // its retry copy meets the silent link
          }
          appliedOnce += messages.length;
          return messages.map(() => 'applied' as const);
        },
      },
    };
    await behindBrokerProxy(async (c, amqpProxy) => {
      c.consumer.start();
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      await publish(1);
      await entered;
      amqpProxy.blackhole();
      open();
      await waitUntil(() => !c.consumer.isReady(), { message: 'not ready once the batch is given up' });
      // The network gives up on the silent connection at last: the broker returns its unacknowledged message.
      amqpProxy.dropDead();
      amqpProxy.restore();
      await waitUntil(() => c.consumer.isReady(), { timeoutMs: 60_000, message: 'reconnected' });
      await waitUntil(() => appliedOnce === 1, { message: 'the message applied after the reconnect' });
    }, opts);
  });
});
