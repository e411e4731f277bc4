/**
 * Rows the broker refuses, against the real RabbitMQ: a header it routes by, a routing key the relay's user may not
 * write, a consumer queue that is full. None of them stalls the source: each refused row lands in the invalid queue
 * with the reason, the rows after it arrive, and a full queue never sees an aggregate's events out of order.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { assertEventTopology, topologyNames } from '@saga/common/messaging/topology';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { collect, type Received } from '../../../test/support/amqp';
import { createTestEnv, rabbitmqctl, type TestEnv } from '../../../test/support/env';
import { writeOutbox } from '../../../test/support/outbox-writer';
import { killAll, type Running } from '../../../test/support/process';
import { startRelayProc } from '../../../test/support/stack';
import { waitUntil } from '../../../test/support/wait';

let env: TestEnv;
const running: Running[] = [];
const users: string[] = [];
const startRelay = (extra: Record<string, string> = {}) => {
  const r = startRelayProc(env, {
    RELAY_RETRY_MAX_MS: '500',
    RELAY_SOURCES: `order=${env.relayUrl('order')}`,
    ...extra,
  });
  running.push(r);
  return r;
};
const streaming = (r: Running) => r.waitForLog((l) => l.msg === 'streaming' && l.source === 'order');

/** Insert raw outbox rows (SQL values), one transaction each, as the superuser. */
async function insertRaw(rows: string[]) {
  const c = new pg.Client({ connectionString: env.adminUrl('order') });
  await c.connect();
  try {
    for (const r of rows)
      await c.query(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ${r}`);
  } finally {
    await c.end();
  }
}
const invalidOf = (invalid: { messages: Received[] }, aggregateId: string) =>
  invalid.messages.find((m) => (m.body as { row?: { aggregateid?: string } }).row?.aggregateid === aggregateId);

beforeAll(async () => {
  env = await createTestEnv('refusals');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  await killAll();
  for (const u of users) rabbitmqctl('delete_user', u);
  await env?.close();
});

describe('rows the broker refuses', () => {
  it('a CC or BCC header lands in the invalid queue with its reason, and the rows after it arrive', async () => {
    const invalid = await collect(env.rabbitUrl, env.exchange, { queue: topologyNames(env.exchange).invalidQueue });
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streaming(relay);
    await insertRaw([
      `(gen_random_uuid(), 'test', 'cc-1', 'Tested', '{"version":1}', '{"correlationId":"cc-1","CC":"not-an-array"}')`,
      `(gen_random_uuid(), 'test', 'bcc-1', 'Tested', '{"version":1}', '{"correlationId":"bcc-1","BCC":["x.y"]}')`,
    ]);
    const after = await writeOutbox(env.serviceUrl('order'), { rows: 50, prefix: 'cc-after' });
    await waitUntil(() => after.every((w) => sink.messages.some((m) => m.id === w.id)), {
      message: 'the 50 rows after the refused ones',
    });
    for (const [id, name] of [
      ['cc-1', 'CC'],
      ['bcc-1', 'BCC'],
    ] as const) {
      const kept = await waitUntil(() => invalidOf(invalid, id), { message: `${id} in the invalid queue` });
      expect(String(kept.headers[HEADER.invalidReason])).toMatch(new RegExp(`headers\\.${name} is not allowed`));
    }
    expect(sink.messages.filter((m) => m.aggregateId === 'cc-1' || m.aggregateId === 'bcc-1')).toEqual([]);
    await invalid.close();
    await sink.close();
  });

  it('a routing key the relay user may not write (403) lands in the invalid queue with the broker reply, and the rows after it arrive', async () => {
    // A relay user whose topic permission on the events exchange covers test.* only.
    const user = `${env.id}_relay`;
    users.push(user);
    rabbitmqctl('add_user', user, 'secret');
    rabbitmqctl('set_permissions', '-p', env.vhost, user, '.*', '.*', '.*');
    rabbitmqctl('set_topic_permissions', '-p', env.vhost, user, env.exchange, '^test\\.', '.*');
    const url = new URL(env.rabbitUrl);
    url.username = user;
    url.password = 'secret';
    const invalid = await collect(env.rabbitUrl, env.exchange, { queue: topologyNames(env.exchange).invalidQueue });
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay({ RABBITMQ_URL: url.toString() });
    await streaming(relay);
    const before = await writeOutbox(env.serviceUrl('order'), { rows: 20, prefix: 'perm-before' });
    await insertRaw([
      `(gen_random_uuid(), 'secret', 'perm-1', 'Tested', '{"version":1}', '{"correlationId":"perm-1"}')`,
    ]);
    const after = await writeOutbox(env.serviceUrl('order'), { rows: 50, prefix: 'perm-after' });
    await waitUntil(() => [...before, ...after].every((w) => sink.messages.some((m) => m.id === w.id)), {
      message: 'the rows before and after the refused one',
    });
    const kept = await waitUntil(() => invalidOf(invalid, 'perm-1'), { message: 'perm-1 in the invalid queue' });
    expect(String(kept.headers[HEADER.invalidReason])).toMatch(/^the broker refused it: .*403.*ACCESS_REFUSED/);
    expect(sink.messages.some((m) => m.aggregateId === 'perm-1')).toBe(false);
    await invalid.close();
    await sink.close();
  });

  it('a full consumer queue never gets a later event of an aggregate before the one it refused; the refused one is sent again until stored', async () => {
    // A monitor-like queue that refuses publishes when full (bytes), and an inventory-like queue without a bound.
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createChannel();
    await assertEventTopology(ch, env.exchange);
    const full = `${env.id}.full`;
    const open = `${env.id}.open`;
    await ch.assertQueue(full, { arguments: { 'x-max-length-bytes': 3000, 'x-overflow': 'reject-publish' } });
    await ch.assertQueue(open, {});
    await ch.bindQueue(full, env.exchange, 'order.#');
    await ch.bindQueue(open, env.exchange, 'order.#');
    // Fill it so that a small event fits and a large one does not.
    ch.sendToQueue(full, Buffer.alloc(2500, 'f'));
    await waitUntil(async () => (await ch.checkQueue(full)).messageCount === 1, { message: 'queue filled' });
    const relay = startRelay();
    await streaming(relay);
    const big = JSON.stringify({ version: 1, data: { pad: 'p'.repeat(2000) } });
    await insertRaw([
      `(gen_random_uuid(), 'order', 'order-1', 'OrderPlaced', '${big}', '{"correlationId":"order-1"}')`,
      `(gen_random_uuid(), 'order', 'order-1', 'OrderCancelled', '{"version":1}', '{"correlationId":"order-1"}')`,
    ]);
    // The inventory-like queue stores OrderPlaced; the full one refuses it, more than once.
    const refusals = () => relay.logs.filter((l) => String(l.msg).startsWith('broker did not store a message'));
    await waitUntil(() => refusals().length >= 3, { message: 'refused more than once', timeoutMs: 20_000 });
    // The monitor catches up: the queue drains, and what arrives is in the aggregate's order.
    const arrived: string[] = [];
    await ch.consume(full, (m) => m && arrived.push(String(m.properties.type ?? 'filler')), { noAck: true });
    await waitUntil(() => arrived.includes('OrderPlaced') && arrived.includes('OrderCancelled'), {
      message: 'both events in the full queue',
    });
    const firsts = arrived.filter((t, i) => t !== 'filler' && arrived.indexOf(t) === i);
    expect(firsts).toEqual(['OrderPlaced', 'OrderCancelled']);
    expect(refusals().every((l) => l.reason === 'nacked')).toBe(true);
    const inOpen: string[] = [];
    await ch.consume(open, (m) => m && inOpen.push(String(m.properties.type)), { noAck: true });
    await waitUntil(() => inOpen.includes('OrderCancelled'), { message: 'open queue has both' });
    const placedCopies = inOpen.filter((t) => t === 'OrderPlaced').length;
    expect(inOpen.indexOf('OrderPlaced')).toBeLessThan(inOpen.indexOf('OrderCancelled'));
    console.log(
      `relay: a full queue refused OrderPlaced ${refusals().length} times; the unbounded queue got ${placedCopies} copies of it and 1 of OrderCancelled (the duplicate tail)`,
    );
    expect(relay.logs.filter((l) => l.msg === 'session ended with an error')).toEqual([]);
    await conn.close();
  });
});
