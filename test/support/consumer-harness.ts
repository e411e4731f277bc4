/**
 * What the consumer's integration tests share: events published as the relay publishes them, a real service batch
 * handler (inventory's) on a pool of the test's choosing, a TCP proxy in front of its database to break the link,
 * and what the database and the broker hold afterwards.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createConsumer, type ConsumerOptions } from '@saga/common/messaging/consumer';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { createLogger, type Logger } from '@saga/common/runtime/logger';
import { createPool, poolConfig } from '@saga/common/db/pg';
import { inventoryHandler } from '../../services/inventory/src/messaging/handlers';
import { createTestEnv, type TestEnv } from './env';
import { startTcpProxyFor, type TcpProxy } from './tcp-proxy';

export const INVENTORY_QUEUE = 'inventory.events';

/** An OrderConfirmed event for an order (a new one unless `extra.orderId`), as the relay publishes it. Answers its message id. */
export function publishOrderConfirmed(
  ch: amqp.Channel,
  exchange: string,
  extra: { headers?: Record<string, unknown>; orderId?: string } = {},
): string {
  const orderId = extra.orderId ?? randomUUID();
  const id = randomUUID();
  const m = encodeOutboxRow(
    {
      id,
      aggregatetype: 'order',
      aggregateid: orderId,
      type: 'OrderConfirmed',
      payload: { version: 1, data: { orderId, customerId: 'c-consumer-test', totalCents: 100 } },
      headers: { correlationId: orderId },
    },
    'order',
    'outbox',
  );
  if (!m.ok) throw new Error(m.reason);
  ch.publish(exchange, m.routingKey, m.content, { ...m.options, headers: { ...m.options.headers, ...extra.headers } });
  return id;
}

/** An order event with `data`, as the relay publishes it. Answers its message id. */
export function publishOrderEvent(
  ch: amqp.Channel,
  exchange: string,
  type: 'OrderPlaced' | 'OrderCancelled' | 'OrderConfirmed',
  data: { orderId: string } & Record<string, unknown>,
): string {
  const id = randomUUID();
  const m = encodeOutboxRow(
    {
      id,
      aggregatetype: 'order',
      aggregateid: data.orderId,
      type,
      payload: { version: 1, data },
      headers: { correlationId: data.orderId },
    },
    'order',
    'outbox',
  );
  if (!m.ok) throw new Error(m.reason);
  ch.publish(exchange, m.routingKey, m.content, m.options);
  return id;
}

/** The inventory service's consumer on `databaseUrl` (its own pool), with the test's settings. */
export function inventoryConsumer(
  env: TestEnv,
  databaseUrl: string,
  opts: Partial<ConsumerOptions> & { poolOptions?: pg.PoolConfig } = {},
) {
  const log: Logger = createLogger('consumer-test', process.env.TEST_LOG_LEVEL ?? 'warn');
  // A service's pool settings, with deadlines short enough for a test.
  const pool = createPool(databaseUrl, log, {
    ...poolConfig({
      max: 4,
      applicationName: 'consumer-test',
      planCacheMode: 'auto',
      queryTimeoutMs: 2000,
      keepAliveMs: 1000,
    }),
    connectionTimeoutMillis: 2000,
    ...opts.poolOptions,
  });
  const consumer = createConsumer({
    url: env.rabbitUrl,
    exchange: env.exchange,
    queue: INVENTORY_QUEUE,
    handler: inventoryHandler(pool, INVENTORY_QUEUE),
    log,
    registry: new Registry(),
    prefetch: 64,
    maxBatch: 64,
    batchIntervalMs: 0,
    retryBaseMs: 50,
    ...opts,
  });
  let stopped: Promise<void> | undefined;
  return {
    consumer,
    pool,
    /** Idempotent: a test may stop the consumer itself and still clean up in `finally`. */
    stop() {
      stopped ??= consumer.stop().then(() => pool.end());
      return stopped;
    },
  };
}

/** How many of `ids` the inbox of inventory's consumer holds (applied). */
export async function appliedCount(env: TestEnv, ids: readonly string[]): Promise<number> {
  const c = new pg.Client({ connectionString: env.adminUrl('inventory') });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(
      'SELECT count(*) AS n FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])',
      [INVENTORY_QUEUE, ids],
    );
    return Number(rows[0]!.n);
  } finally {
    await c.end();
  }
}

export async function queueDepth(ch: amqp.Channel, queue: string): Promise<number> {
  return (await ch.checkQueue(queue)).messageCount;
}

/** A consumer test's own environment, a confirm channel to publish and inspect queues, a proxy to inventory's database. */
export type ProxiedInventory = {
  env: TestEnv;
  conn: amqp.ChannelModel;
  ch: amqp.ConfirmChannel;
  /** In front of inventory's database: connect through it with throughProxy(env.serviceUrl('inventory'), proxy). */
  proxy: TcpProxy;
};

/** Create the test environment `name` with a broker channel and a proxy to inventory's database. */
export async function openProxiedInventory(name: string): Promise<ProxiedInventory> {
  const env = await createTestEnv(name);
  const opened: Partial<ProxiedInventory> = { env };
  try {
    opened.conn = await amqp.connect(env.rabbitUrl);
    // A test that deletes a queue under the consumer may see the broker close things; its own checks say what matters.
    opened.conn.on('error', () => undefined);
    const ch = await opened.conn.createConfirmChannel();
    const proxy = await startTcpProxyFor(env.serviceUrl('inventory'));
    return { env, conn: opened.conn, ch, proxy };
  } catch (err) {
    await closeProxiedInventory(opened);
    throw err;
  }
}

/** Close what openProxiedInventory opened (any part of it: a setup that failed half-way still cleans up). */
export async function closeProxiedInventory(s: Partial<ProxiedInventory>): Promise<void> {
  await s.conn?.close().catch(() => undefined);
  await s.proxy?.close();
  await s.env?.close();
}
