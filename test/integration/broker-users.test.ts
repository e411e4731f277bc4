/** A broker user per component: each can do its job and nothing more, and forged events move no money. */
import { randomBytes, randomUUID } from 'node:crypto';
import amqp, { type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { consumerQueueNames } from '@saga/common/messaging/topology';
import { UNTRUSTED_PUBLISHER } from '@saga/common/messaging/publisher-trust';
import { ensureBrokerUsers, BROKER_COMPONENTS, type BrokerComponent } from '../../scripts/lib/broker-users';
import { loadAdminConfig } from '../../scripts/lib/admin';
import { collect } from '../support/amqp';
import { createTestEnv, rabbitmqctl, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { sagaClient } from '../support/saga';
import { startMonitor, startStack, type ServiceProc, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

let env: TestEnv;
let stack: Stack | undefined;
let monitor: ServiceProc | undefined;
const users = {} as Record<BrokerComponent, { user: string; password: string }>;
const urlOf = (c: BrokerComponent, password = users[c].password) => {
  const u = new URL(env.rabbitUrl);
  u.username = users[c].user;
  u.password = password;
  return u.toString();
};
const usersEnv = () =>
  Object.fromEntries(
    BROKER_COMPONENTS.flatMap((c) => [
      [`${c.toUpperCase()}_RABBITMQ_USER`, users[c].user],
      [`${c.toUpperCase()}_RABBITMQ_PASSWORD`, users[c].password],
    ]),
  );
const setup = () =>
  ensureBrokerUsers(
    loadAdminConfig({ RABBITMQ_URL: env.rabbitUrl, EVENTS_EXCHANGE: env.exchange, ...usersEnv() }),
    () => undefined,
  );

type Attempt = { ok: true } | { ok: false; code: number | string };

/** Run `use` on a confirm channel of `url`; answers how the broker took it (the channel's error code on refusal). */
async function attempt(url: string, use: (ch: ConfirmChannel) => Promise<unknown> | void): Promise<Attempt> {
  const conn = await amqp.connect(url);
  conn.on('error', () => undefined);
  try {
    const ch = await conn.createConfirmChannel();
    const refused = new Promise<Attempt>((resolve) =>
      ch.on('error', (err: { code?: number }) => resolve({ ok: false, code: err.code ?? String(err) })),
    );
    const done = (async () => {
      await use(ch);
      await ch.waitForConfirms();
      return { ok: true } as const;
    })().catch(() => refused);
    return await Promise.race([done, refused]);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

beforeAll(async () => {
  env = await createTestEnv('brokerusers');
  for (const c of BROKER_COMPONENTS)
    users[c] = { user: `${env.id}_${c}`, password: `mq-${randomBytes(8).toString('hex')}` };
  await setup();
  await setup(); // idempotent: users and permissions already there
  const trusted = { EVENT_PUBLISHERS: users.relay.user };
  stack = await startStack(env, {
    relay: { RABBITMQ_URL: urlOf('relay') },
    order: { RABBITMQ_URL: urlOf('order'), ...trusted },
    inventory: { RABBITMQ_URL: urlOf('inventory'), ...trusted },
    payment: { RABBITMQ_URL: urlOf('payment'), ...trusted },
  });
  monitor = await startMonitor(env, { RABBITMQ_URL: urlOf('monitor'), ...trusted });
});

afterAll(async () => {
  await stack?.stop();
  await monitor?.proc.kill('SIGTERM');
  await killAll();
  await env?.close();
  for (const c of BROKER_COMPONENTS) if (users[c]) rabbitmqctl('delete_user', users[c].user);
});

const saga = sagaClient(() => ({
  order: stack!.services.order.url,
  inventory: stack!.services.inventory.url,
  payment: stack!.services.payment.url,
}));

describe('a broker user per component', () => {
  it('completes the saga, both outcomes, with each component on its own user', async () => {
    const sku = await saga.product(5, 300);
    const rich = await saga.account(10_000);
    const poor = await saga.account(100);
    expect((await saga.finalOrder(await saga.place(rich, [{ sku, quantity: 1 }]))).status).toBe('CONFIRMED');
    expect((await saga.finalOrder(await saga.place(poor, [{ sku, quantity: 1 }]))).status).toBe('CANCELLED');
    await saga.expectInvariants();
  });

  it('refuses what a component has no business doing', async () => {
    const event = Buffer.from('{}');
    // The order service may not publish events, nor read another component's queue.
    expect(
      await attempt(urlOf('order'), (ch) => void ch.publish(env.exchange, 'inventory.StockReserved', event)),
    ).toEqual({ ok: false, code: 403 });
    expect(await attempt(urlOf('order'), (ch) => ch.consume('payment.events', () => undefined))).toEqual({
      ok: false,
      code: 403,
    });
    // The relay publishes; it reads no service queue.
    expect(await attempt(urlOf('relay'), (ch) => ch.consume('payment.events', () => undefined))).toEqual({
      ok: false,
      code: 403,
    });
    expect(await attempt(urlOf('payment'), (ch) => ch.purgeQueue('inventory.events'))).toEqual({
      ok: false,
      code: 403,
    });
  });

  it('dead-letters a forged StockReserved as untrusted and moves no money', async () => {
    const customer = await saga.account(10_000);
    const orderId = randomUUID();
    const forged = encodeOutboxRow(
      {
        id: randomUUID(),
        aggregatetype: 'inventory',
        aggregateid: orderId,
        type: 'StockReserved',
        payload: {
          version: 1,
          data: {
            orderId,
            customerId: customer,
            lines: [{ sku: 'sku-x', quantity: 1, priceCents: 900 }],
            totalCents: 900,
          },
        },
        headers: { correlationId: orderId, causationId: null },
      },
      'inventory',
      'outbox',
    );
    if (!forged.ok) throw new Error(forged.reason);
    const dlq = await collect(env.rabbitUrl, env.exchange, { queue: consumerQueueNames('payment.events').dlq });
    try {
      const send = (options: amqp.Options.Publish) => (ch: ConfirmChannel) =>
        void ch.sendToQueue('payment.events', forged.content, { ...forged.options, ...options });
      // Claiming to be the relay: the broker closes the channel (user-id must be the connection's user).
      expect(await attempt(urlOf('order'), send({ userId: users.relay.user }))).toEqual({ ok: false, code: 406 });
      // Straight into payment's queue (the order user writes the default exchange for its own retries): signed as
      // itself, or not signed at all. Both reach the consumer, which refuses them.
      const asOrder = { messageId: randomUUID(), userId: users.order.user };
      const unsigned = { messageId: randomUUID() };
      expect(await attempt(urlOf('order'), send(asOrder))).toEqual({ ok: true });
      expect(await attempt(urlOf('order'), send(unsigned))).toEqual({ ok: true });
      await waitUntil(() => dlq.messages.length >= 2, { message: 'both forgeries dead-lettered' });
      expect(dlq.messages.map((m) => [m.id, m.headers['x-dead-letter-reason']])).toEqual([
        [asOrder.messageId, UNTRUSTED_PUBLISHER],
        [unsigned.messageId, UNTRUSTED_PUBLISHER],
      ]);
      expect(String(dlq.messages[0]!.headers['x-dead-letter-error'])).toContain(users.order.user);
    } finally {
      await dlq.close();
    }
    expect(await saga.getBalance(customer)).toBe(10_000);
    const db = new pg.Client({ connectionString: env.adminUrl('payment') });
    await db.connect();
    try {
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE aggregateid = $1', [
        orderId,
      ]);
      expect(rows[0]!.n).toBe('0');
    } finally {
      await db.end();
    }
  });

  it('rotates a password by running setup again with the new value', async () => {
    const old = users.order.password;
    users.order.password = `mq-${randomBytes(8).toString('hex')}`;
    await setup();
    await expect(amqp.connect(urlOf('order', old))).rejects.toThrow();
    expect(await attempt(urlOf('order'), () => undefined)).toEqual({ ok: true });
  });
});
