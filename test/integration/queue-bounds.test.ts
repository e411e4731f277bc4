/**
 * Operator queues (unroutable, invalid, each DLQ) are bounded by setup's policy, also when they existed before
 * (an upgraded broker), their depth is a gauge, and the dlq tool reads, limits and purges them.
 */
import { execFileSync } from 'node:child_process';
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
});
