/**
 * Operator queues (unroutable, invalid, each DLQ) are bounded by setup's policy, also when they existed before
 * (an upgraded broker), their depth is a gauge, and the dlq tool reads, limits and purges them.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import amqp from 'amqplib';
import pino from 'pino';
import { Registry } from 'prom-client';
import { assertConsumerTopology, topologyNames } from '@saga/common/messaging/topology';
import { operatorQueues, QUEUE_BOUNDS, startQueueDepthGauge } from '@saga/common/messaging/operator-queues';
import { SERVICES } from '@saga/common/contracts/service-names';
import { applyQueuePolicies } from '../../scripts/lib/queue-policies';
import { createTestEnv, rabbitmqctl, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { killAll, ROOT } from '../support/process';
import { startRelayProc } from '../support/stack';
import { settleWithin } from '@saga/common/runtime/settle';
import { startTcpProxyFor, throughProxy } from '../support/tcp-proxy';
import { waitUntil } from '../support/wait';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('qbound');
});
afterAll(async () => {
  await killAll();
  await env?.close();
});

const dlq = (...args: string[]) =>
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/dlq.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH!, RABBITMQ_URL: env.rabbitUrl, EVENTS_EXCHANGE: env.exchange },
  });

describe('operator queue bounds', () => {
  it('a policy bounds queues that already exist; the gauge and the dlq tool see them', async () => {
    const names = topologyNames(env.exchange);
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    try {
      // The queues exist first, declared as every component declares them: the upgrade case.
      for (const s of SERVICES)
        await assertConsumerTopology(ch, {
          exchange: env.exchange,
          queue: `${s}.events`,
          routingKeys: [],
          deliveryLimit: 5,
        });
      const said: string[] = [];
      await applyQueuePolicies({ RABBITMQ_URL: env.rabbitUrl, EVENTS_EXCHANGE: env.exchange }, (m) => said.push(m));
      expect(said).toHaveLength(3);

      const policies = Object.fromEntries(
        // Not trimmed: a queue without a policy is `name<TAB>` and trimming would eat the tab of the last line.
        rabbitmqctl('list_queues', '-p', env.vhost, '--no-table-headers', 'name', 'policy')
          .split('\n')
          .filter((l) => l.length > 0)
          .map((l) => [l.split('\t')[0]!, l.split('\t')[1] ?? ''] as [string, string]),
      );
      for (const q of operatorQueues(env.exchange, SERVICES))
        expect(policies[q]).toMatch(/^saga-(unroutable|operator-queue)-bound$/);
      for (const s of SERVICES) expect(policies[`${s}.events`]).toBe(''); // the work queues are not bounded by it

      // Past the bound the oldest message goes: the queue stays at the bound.
      const limit = QUEUE_BOUNDS.operator['max-length'];
      for (let i = 0; i < limit + 5; i++)
        ch.sendToQueue(names.invalidQueue, Buffer.from(`{"n":${i}}`), { messageId: `m${i}`, persistent: true });
      await ch.waitForConfirms();
      await waitUntil(async () => (await ch.checkQueue(names.invalidQueue)).messageCount === limit, {
        message: `invalid queue at ${limit}`,
      });

      const registry = new Registry();
      const gauge = startQueueDepthGauge({
        url: env.rabbitUrl,
        exchange: env.exchange,
        queues: operatorQueues(env.exchange, SERVICES),
        registry,
        log: pino({ level: 'silent' }),
        intervalMs: 60_000,
      });
      await gauge.checkNow();
      await gauge.stop();
      const text = await registry.metrics();
      expect(text).toContain(`saga_operator_queue_messages{queue="${names.invalidQueue}"} ${limit}`);
      expect(text).toContain(`saga_operator_queue_messages{queue="order.events.dlq"} 0`);
      expect(text).toContain(
        `saga_operator_queue_max_length{queue="${names.unroutableQueue}"} ${QUEUE_BOUNDS.unroutable['max-length']}`,
      );

      const listed = dlq('list', 'invalid', '--json', '--limit', '3')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { messageId: string });
      expect(listed.map((m) => m.messageId)).toEqual(['m5', 'm6', 'm7']); // m0..m4 were dropped at the head
      expect(() => dlq('replay', 'invalid')).toThrow(/cannot be replayed/);
      expect(() => dlq('purge', 'invalid')).toThrow(/add --yes/);
      expect(dlq('purge', 'invalid', '--yes')).toContain(`purged ${limit} message(s)`);
      expect((await ch.checkQueue(names.invalidQueue)).messageCount).toBe(0);
    } finally {
      await conn.close();
    }
  });

  it('the relay serves the depth of every operator queue on /metrics and stops cleanly', async () => {
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    for (let i = 0; i < 3; i++) ch.sendToQueue('payment.events.dlq', Buffer.from('{}'), { messageId: `d${i}` });
    await ch.waitForConfirms();
    await conn.close();
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const relay = startRelayProc(env, { RELAY_PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(
      async () => (await metricValue(base, 'saga_operator_queue_messages', { queue: 'payment.events.dlq' })) === 3,
      { message: 'payment DLQ depth 3 on the relay /metrics' },
    );
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const q of operatorQueues(env.exchange, SERVICES))
      expect(text).toContain(`saga_operator_queue_max_length{queue="${q}"`);
    expect((await relay.kill('SIGTERM')).code).toBe(0);
  });

  it('the depth gauge gives a silent broker link up, reads again over a new one, and stops without waiting', async () => {
    const queue = `qbound-depth-${randomUUID()}`;
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    const proxy = await startTcpProxyFor(env.rabbitUrl);
    const registry = new Registry();
    const gaugeOptions = {
      url: throughProxy(env.rabbitUrl, proxy),
      exchange: env.exchange,
      queues: [queue],
      log: pino({ level: 'silent' }),
      intervalMs: 60_000,
    };
    const gauge = startQueueDepthGauge({ ...gaugeOptions, registry, rpcTimeoutMs: 1_000 });
    const gauged = async () =>
      (await registry.getSingleMetric('saga_operator_queue_messages')!.get()).values.find(
        (v) => v.labels.queue === queue,
      )?.value;
    try {
      await ch.assertQueue(queue, { durable: false, autoDelete: true });
      const put = async (n: number) => {
        for (let i = 0; i < n; i++) ch.sendToQueue(queue, Buffer.from('x'));
        await ch.waitForConfirms();
      };
      await put(2);
      await gauge.checkNow();
      expect(await gauged()).toBe(2);

      proxy.blackhole(); // the broker answers nothing on the gauge's connection, which stays open
      await put(1);
      // Without a bound per answer the check would wait for the heartbeat (about two minutes), and every later one
      // behind it.
      await settleWithin(gauge.checkNow(), 5_000, 'a check on a silent link');
      expect(await gauged()).toBeUndefined(); // no depth rather than an old one
      const accepted = proxy.accepted();
      proxy.restore();
      await gauge.checkNow();
      expect(proxy.accepted()).toBe(accepted + 1); // a new connection
      expect(await gauged()).toBe(3);

      // A gauge whose answers may take 10 s: only the stop can end its check sooner.
      const patient = startQueueDepthGauge({ ...gaugeOptions, registry: new Registry(), rpcTimeoutMs: 10_000 });
      await patient.checkNow();
      proxy.blackhole();
      const checking = patient.checkNow();
      await new Promise((r) => setImmediate(r)); // the check has begun: it waits for the broker to open a channel
      // Well within the answers' own bound (10 s): the stop does not wait for the check. The check itself ends by
      // that bound (amqplib does not fail an RPC whose socket was destroyed until its heartbeat says so).
      await settleWithin(patient.stop(), 5_000, 'a stop while a check waits on a silent link');
      await settleWithin(checking, 15_000, 'the check, by its own bound');
    } finally {
      await gauge.stop();
      await conn.close();
      await proxy.close();
    }
  });

  it('the relay stops cleanly while its broker never answers the handshake', async () => {
    const proxy = await startTcpProxyFor(env.rabbitUrl);
    proxy.blackhole(); // every connection is accepted and never answered
    const relay = startRelayProc(env, { RABBITMQ_URL: throughProxy(env.rabbitUrl, proxy) });
    try {
      await waitUntil(() => proxy.accepted() > 0, { message: 'the relay connecting to the broker' });
      // A connect's own bound (15 s with one address) is as long as the whole shutdown: the stop gives it up.
      expect((await relay.kill('SIGTERM')).code).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
