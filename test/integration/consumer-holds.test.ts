/**
 * A consumer whose database is unavailable holds its messages: it spends none of their attempts and none of the
 * broker's deliveries, goes not ready, and applies every message once the database answers again. The database link
 * goes through a TCP proxy of the test's own, so the shared PostgreSQL is never stopped.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { consumerQueueNames, assertConsumerTopology } from '@saga/common/messaging/topology';
import { routingKeyOf } from '@saga/common/contracts/catalog';
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
import { throughProxy, type TcpProxy } from '../support/tcp-proxy';
import { waitUntil } from '../support/wait';

/**
 * How long the database stays unreachable. A consumer that returns a failed batch to the queue (closing its channel)
 * spends one delivery of each message per reconnect; with the delivery limit below (4) and the reconnect backoff
 * (200 ms doubling, with jitter), five returns take a few seconds, so 15 s is ample for the broker to dead-letter
 * the backlog of such a consumer. A production outage is longer (minutes): a holding consumer waits out any length.
 */
const OUTAGE_MS = Number(process.env.CONSUMER_OUTAGE_MS ?? 15_000);
const DELIVERY_LIMIT = 4;
const BACKLOG = 100;

let env: TestEnv;
let conn: amqp.ChannelModel;
let ch: amqp.ConfirmChannel;
let proxy: TcpProxy;
const names = consumerQueueNames(INVENTORY_QUEUE);

beforeAll(async () => {
  ({ env, conn, ch, proxy } = await openProxiedInventory('dbhold'));
  // The queues exist first with a small delivery limit, so that a consumer that spends deliveries shows it fast.
  await assertConsumerTopology(ch, {
    exchange: env.exchange,
    queue: INVENTORY_QUEUE,
    routingKeys: [routingKeyOf('OrderConfirmed')],
    deliveryLimit: DELIVERY_LIMIT,
  });
});
afterAll(() => closeProxiedInventory({ env, conn, proxy }));

describe('consumer during a database outage', () => {
  it('holds a backlog through an outage: none dead-lettered or retried, all applied once it is back', async () => {
    const c = inventoryConsumer(env, throughProxy(env.serviceUrl('inventory'), proxy), {
      maxAttempts: DELIVERY_LIMIT / 4,
    });
    c.consumer.start();
    try {
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      proxy.cut();
      const ids = Array.from({ length: BACKLOG }, () => publishOrderConfirmed(ch, env.exchange));
      await ch.waitForConfirms();
      await waitUntil(() => !c.consumer.isReady(), { message: 'not ready while the database is unreachable' });
      // The fault itself lasts OUTAGE_MS: this is the length of the outage, not a wait for a condition.
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      expect(await queueDepth(ch, names.dlq)).toBe(0);
      expect(await queueDepth(ch, names.retry)).toBe(0);
      proxy.restore();
      await waitUntil(async () => (await appliedCount(env, ids)) === BACKLOG, {
        timeoutMs: 60_000,
        message: `all ${BACKLOG} applied after the outage`,
      });
      await waitUntil(() => c.consumer.isReady(), { message: 'ready again' });
      expect(await queueDepth(ch, names.dlq)).toBe(0);
      expect(await queueDepth(ch, names.retry)).toBe(0);
      await waitUntil(async () => (await queueDepth(ch, INVENTORY_QUEUE)) === 0, { message: 'queue drained' });
    } finally {
      await c.stop();
    }
  });
});

/**
 * How long each environment fault lasts. The consumer under test retries with a 50 ms base: a consumer that spent
 * attempts on these errors would dead-letter its messages within about a second.
 */
const FAULT_MS = 3_000;

describe("consumer facing database errors that are the environment's fault", () => {
  let admin: pg.Client;
  let locker: pg.Client | undefined;
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: env.adminUrl('inventory') });
    await admin.connect();
  });
  afterAll(async () => {
    await locker?.end().catch(() => undefined);
    await admin?.end();
  });
  const db = () => pg.escapeIdentifier(env.databases.inventory);
  const role = () => pg.escapeIdentifier(new URL(env.serviceUrl('inventory')).username);
  /**
   * A transaction of the test's own holding the reservations locked: the consumer's statements wait behind it (the
   * inbox stays readable for the test's own checks).
   */
  async function lockReservations() {
    locker = new pg.Client({ connectionString: env.adminUrl('inventory') });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE reservations IN ACCESS EXCLUSIVE MODE');
  }
  async function unlockReservations() {
    await locker?.query('COMMIT');
    await locker?.end();
    locker = undefined;
  }
  /** Role settings apply to new sessions: end the consumer's, as a failover or a rotation would. */
  const endServiceSessions = () =>
    admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = $2', [
      env.databases.inventory,
      new URL(env.serviceUrl('inventory')).username,
    ]);

  const cases: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
    [
      'a missing table (42P01, before migrations)',
      () => admin.query('ALTER TABLE reservations RENAME TO reservations_away'),
      () => admin.query('ALTER TABLE reservations_away RENAME TO reservations'),
    ],
    [
      'a read-only server (25006, after a failover)',
      () => admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} SET default_transaction_read_only = on`),
      async () => {
        await admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} RESET default_transaction_read_only`);
        await endServiceSessions();
      },
    ],
    [
      'too many connections (53300)',
      () => admin.query(`ALTER DATABASE ${db()} CONNECTION LIMIT 0`),
      () => admin.query(`ALTER DATABASE ${db()} CONNECTION LIMIT -1`),
    ],
    [
      'a statement timeout (57014)',
      async () => {
        await admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} SET statement_timeout = '300ms'`);
        await lockReservations();
      },
      async () => {
        await unlockReservations();
        await admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} RESET statement_timeout`);
      },
    ],
    [
      'a lock timeout (55P03)',
      async () => {
        await admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} SET lock_timeout = '300ms'`);
        await lockReservations();
      },
      async () => {
        await unlockReservations();
        await admin.query(`ALTER ROLE ${role()} IN DATABASE ${db()} RESET lock_timeout`);
      },
    ],
  ];

  it.each(cases)('holds its messages through %s without spending an attempt', async (_name, fault, repair) => {
    await fault();
    let repaired = false;
    const c = inventoryConsumer(env, env.serviceUrl('inventory'), { maxAttempts: DELIVERY_LIMIT / 4 });
    c.consumer.start();
    try {
      const ids = Array.from({ length: 20 }, () => publishOrderConfirmed(ch, env.exchange));
      await ch.waitForConfirms();
      await waitUntil(async () => (await queueDepth(ch, INVENTORY_QUEUE)) === 0, { message: 'delivered' });
      // The fault lasts FAULT_MS: its length, not a wait for a condition.
      await new Promise((r) => setTimeout(r, FAULT_MS));
      expect(c.consumer.isReady()).toBe(false);
      expect(await queueDepth(ch, names.dlq)).toBe(0);
      expect(await queueDepth(ch, names.retry)).toBe(0);
      expect(await appliedCount(env, ids)).toBe(0);
      await repair();
      repaired = true;
      await waitUntil(async () => (await appliedCount(env, ids)) === ids.length, {
        message: 'all applied once the fault is repaired',
      });
      await waitUntil(() => c.consumer.isReady(), { message: 'ready again' });
      expect(await queueDepth(ch, names.dlq)).toBe(0);
      expect(await queueDepth(ch, names.retry)).toBe(0);
    } finally {
      if (!repaired) await repair().catch(() => undefined);
      await c.stop();
    }
  });
});
