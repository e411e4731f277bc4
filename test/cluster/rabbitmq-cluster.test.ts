/**
 * The stack against a three-node RabbitMQ cluster of its own (never the machine's broker): every queue a quorum queue
 * with a member on each node, every component given all three addresses. Under a steady stream of orders the test
 * kills (SIGKILL) the node the relay publishes to, brings it back, then kills the node leading a service's queue.
 * Every order must reach a final state with the stock and money invariants, no history may show an event twice, and
 * every event written to an outbox must reach the broker (a sink queue bound to every routing key is compared with
 * the outbox tables, whose rows are kept for the retention window): a publish lost in the failover would be missing.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { assertEventTopology } from '@saga/common/messaging/topology';
import { SERVICES, consumerQueueOf } from '@saga/common/contracts/service-names';
import { collect } from '../support/amqp';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { writeOutbox } from '../support/outbox-writer';
import { killAll, type Running } from '../support/process';
import { startRabbitCluster, type ClusterNode, type RabbitCluster } from '../support/rabbit-cluster';
import { sagaClient, type OrderView } from '../support/saga';
import { startStack, type Stack } from '../support/stack';
import { freePort } from '../support/pg-cluster';
import { waitUntil } from '../support/wait';

let cluster: RabbitCluster;
let env: TestEnv;
let stack: Stack;
const urls = () => ({
  order: stack.services.order.url,
  inventory: stack.services.inventory.url,
  payment: stack.services.payment.url,
});
const saga = sagaClient(urls);
const SINK = 'cluster-test.sink';
let relayPort: number;
const report: string[] = [];

/** The nodes the relay's sources publish to now, from their latest `streaming` log lines. */
function relayNodes(relay: Running): ClusterNode[] {
  const latest = new Map<string, string>();
  for (const l of relay.logs)
    if (l.msg === 'streaming' && typeof l.broker === 'string') latest.set(String(l.source), l.broker);
  return [...new Set([...latest.values()].map((b) => cluster.nodeOfPort(Number(new URL(b).port))!))];
}
/** The relay's confirms so far: how many, how many took over 250 ms (waiting out an election), how many refused. */
async function relayConfirms() {
  const base = `http://127.0.0.1:${relayPort}`;
  const count = await metricValue(base, 'relay_publish_confirm_seconds_count');
  return {
    count,
    slow: count - (await metricValue(base, 'relay_publish_confirm_seconds_bucket', { le: '0.25' })),
    nacks: await metricValue(base, 'relay_nacks_total'),
  };
}
const streamingCount = (relay: Running) => relay.logs.filter((l) => l.msg === 'streaming').length;

async function waitAllMembersOnline() {
  await waitUntil(
    async () => (await cluster.queues(env.vhost)).every((q) => q.online.length === cluster.nodes.length),
    {
      timeoutMs: 120_000,
      intervalMs: 500,
      message: 'every queue member online',
    },
  );
}

/**
 * Orders at a steady rate (placed with retries, as a client would), a tenth by a customer who cannot pay; at most
 * 32 outstanding. `latest()` is the id of the last order accepted.
 */
function steadyOrders(perSecond: number, sku: string, rich: string, poor: string) {
  const inFlight = new Set<Promise<void>>();
  const errors: unknown[] = [];
  let n = 0;
  let latest: string | undefined;
  const timer = setInterval(() => {
    if (inFlight.size >= 32) return;
    const customer = n++ % 10 === 9 ? poor : rich;
    const p: Promise<void> = saga
      .placeEventually(customer, [{ sku, quantity: customer === poor ? 2 : 1 }])
      .then(
        (id) => {
          latest = id;
        },
        (err: unknown) => void errors.push(err),
      )
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1000 / perSecond);
  return {
    accepted: () => saga.placed.length,
    latest: () => latest,
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      if (errors.length > 0) throw new Error(`${errors.length} orders not accepted: ${String(errors[0])}`);
    },
  };
}

/** The order accepted last is final: the saga moves again after a fault. Answers how long that took. */
async function progressAfter(stream: ReturnType<typeof steadyOrders>, since: number, what: string) {
  const mark = stream.accepted();
  await waitUntil(() => stream.accepted() >= mark + 5, { timeoutMs: 60_000, message: `orders accepted after ${what}` });
  await saga.finalOrder(stream.latest()!, 120_000);
  return Date.now() - since;
}

beforeAll(async () => {
  cluster = await startRabbitCluster(3);
  env = await createTestEnv('cluster', {
    async addVhost(vhost) {
      await cluster.ctl(['add_vhost', vhost]);
      await cluster.ctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
    },
    deleteVhost: () => undefined, // the whole cluster is removed after the test
    url: (vhost) => cluster.urls(vhost),
  });
  // The sink: a quorum queue like the services' own, so it survives the same faults; read after the run.
  const conn = await amqp.connect(cluster.url(cluster.nodes[0]!, env.vhost));
  const ch = await conn.createChannel();
  await assertEventTopology(ch, env.exchange);
  await ch.assertQueue(SINK, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await ch.bindQueue(SINK, env.exchange, '#');
  await conn.close();
  // The relay and the order service list the nodes from the first, inventory from the second, payment from the
  // third: connections (and the leaders of the queues each declares) spread over the cluster, as in production.
  const from = (i: number) => ({ RABBITMQ_URL: cluster.urls(env.vhost, i) });
  relayPort = await freePort();
  stack = await startStack(env, {
    relay: { RELAY_RETRY_MAX_MS: '1000', RELAY_PORT: String(relayPort) },
    // The subject here is that nothing is lost while nodes die, so every order must be accepted: while a leader is
    // elected the saga pauses and more orders are in progress than the default admission bound (ORDER_PENDING_MAX,
    // whose refusals order-api.test.ts covers) lets in on a three-node cluster sharing two cores.
    order: { ORDER_PENDING_MAX: '100000' },
    inventory: from(1),
    payment: from(2),
  });
}, 300_000);

afterAll(async () => {
  console.log(`rabbitmq cluster report\n${report.join('\n')}`);
  await stack?.stop('SIGKILL');
  await killAll();
  await env?.close();
  await cluster?.close();
}, 120_000);

describe('a three-node RabbitMQ cluster', () => {
  it('holds every queue as a quorum queue with a member on each of the three nodes', async () => {
    const queues = await cluster.queues(env.vhost);
    const expected = [...SERVICES.map(consumerQueueOf), SINK];
    expect(queues.map((q) => q.name)).toEqual(expect.arrayContaining(expected));
    for (const q of queues) {
      expect({ name: q.name, type: q.type, members: q.members.length }).toEqual({
        name: q.name,
        type: 'quorum',
        members: 3,
      });
    }
    // Each component starts with the first address of its list: the relay on node 1.
    expect(relayNodes(stack.relay)).toEqual([cluster.nodes[0]]);
  });

  it("keeps every order and every event while the relay's node, then a queue leader's node, is killed", async () => {
    const sku = await saga.product(100_000, 100, 'cluster');
    const rich = await saga.account(100_000_000);
    const poor = await saga.account(150);
    const stream = steadyOrders(20, sku, rich, poor);
    try {
      await waitUntil(() => stream.accepted() >= 60, { timeoutMs: 60_000, message: '60 orders accepted' });

      // Fault 1: the node every relay source publishes to (it also leads the order queue and the relay's own), killed
      // while publishes await their confirms. At 20 orders/s the relay has a message in flight only now and then, so
      // a backlog of 20,000 rows no service consumes (routing key test.Tested, kept by the sink alone) is written to
      // the order outbox, and the node dies once the relay reports messages in flight for that source.
      const [relayNode] = relayNodes(stack.relay);
      const before = streamingCount(stack.relay);
      const backlog = writeOutbox(env.adminUrl('order'), {
        rows: 20_000,
        maxTxnSize: 1_000,
        aggregates: 100,
        prefix: 'backlog',
      });
      const inFlightAtKill = await waitUntil(
        () => metricValue(`http://127.0.0.1:${relayPort}`, 'relay_in_flight_messages', { source: 'order' }),
        {
          timeoutMs: 60_000,
          intervalMs: 10,
          message: 'relay publishes awaiting confirms',
        },
      );
      const killed1 = Date.now();
      await cluster.kill(relayNode!);
      await backlog;
      await waitUntil(() => streamingCount(stack.relay) >= before + 3, {
        timeoutMs: 60_000,
        message: 'relay streaming again',
      });
      const relayBack = Date.now() - killed1;
      expect(relayNodes(stack.relay)).not.toContain(relayNode);
      const moving1 = await progressAfter(stream, killed1, 'the relay node was killed');
      report.push(
        `relay's node ${relayNode!.name} killed with ${inFlightAtKill} order-source messages awaiting confirms: relay publishing again after ${relayBack} ms (to ${relayNodes(
          stack.relay,
        )
          .map((n) => n.name)
          .join(', ')}), a new order final ${moving1} ms after the kill`,
      );
      await cluster.start(relayNode!);
      await waitAllMembersOnline();

      // Fault 2: the leader of a service's queue, preferably on a node the relay is not connected to (an election
      // under the relay's publishes, not another lost connection).
      const serviceQueues: string[] = SERVICES.map(consumerQueueOf);
      const leaders = (await cluster.queues(env.vhost)).filter((q) => serviceQueues.includes(q.name));
      const relayNow = relayNodes(stack.relay).map((n) => n.name);
      const target = leaders.find((q) => !relayNow.includes(q.leader)) ?? leaders[0]!;
      const leaderNode = cluster.nodes.find((n) => n.name === target.leader)!;
      const confirmsBefore = await relayConfirms();
      const killed2 = Date.now();
      await cluster.kill(leaderNode);
      const newLeader = await waitUntil(
        async () => {
          const q = (await cluster.queues(env.vhost)).find((x) => x.name === target.name);
          return q && q.leader !== leaderNode.name && q.online.includes(q.leader) ? q.leader : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, message: `${target.name} has a new leader` },
      );
      const elected = Date.now() - killed2;
      const moving2 = await progressAfter(stream, killed2, 'the leader node was killed');
      const relayThere = relayNow.includes(leaderNode.name)
        ? 'the relay was connected to it too'
        : 'the relay was not connected to it';
      const confirms = await relayConfirms();
      report.push(
        `${target.name} leader ${leaderNode.name} killed (${relayThere}): ${newLeader} leads after ${elected} ms (measured by polling), a new order final ${moving2} ms after the kill; ` +
          `relay meanwhile: ${confirms.count - confirmsBefore.count} publishes confirmed, ${confirms.slow - confirmsBefore.slow} of them after more than 250 ms, ${confirms.nacks - confirmsBefore.nacks} refused`,
      );
      await cluster.start(leaderNode);
      await waitAllMembersOnline();
      await progressAfter(stream, Date.now(), 'every node is back');
    } finally {
      await stream.stop();
    }

    const views = await saga.expectInvariants(180_000);
    expect(views.length).toBe(saga.placed.length);

    // Every event written to an outbox reached the broker: what the relay had published unconfirmed when its node
    // died was published again, and what it published during the election was confirmed.
    const outboxIds = new Set<string>();
    for (const s of SERVICES) {
      const client = new pg.Client({ connectionString: env.adminUrl(s) });
      await client.connect();
      try {
        for (const r of (await client.query<{ id: string }>('SELECT id FROM outbox')).rows) outboxIds.add(r.id);
      } finally {
        await client.end();
      }
    }
    const sink = await collect(cluster.url(cluster.nodes[0]!, env.vhost), env.exchange, { queue: SINK });
    try {
      const seen = new Set<string>();
      await waitUntil(
        () => {
          for (const m of sink.messages) seen.add(m.id!);
          return [...outboxIds].every((id) => seen.has(id));
        },
        { timeoutMs: 120_000, message: `every one of ${outboxIds.size} outbox events in the sink` },
      );
      await sink.drained();
      for (const m of sink.messages) seen.add(m.id!);
      const republished = sink.messages.length - seen.size;

      let duplicates = 0;
      for (const s of SERVICES)
        duplicates += await metricValue(stack.services[s].adminUrl, 'consumer_messages_total', {
          outcome: 'duplicate',
        });
      const confirmed = views.filter((v) => v.status === 'CONFIRMED').length;
      report.push(
        `${views.length} orders final (${confirmed} confirmed), ${outboxIds.size} outbox rows (20,000 of them the backlog), all in the broker; ` +
          `${republished} published more than once by the relay; ${duplicates} duplicates suppressed by the consumers; lost: 0; ` +
          `longest place -> final ${longestSaga(views)} ms; longest time with no order becoming final ${longestQuiet(views)} ms`,
      );
      expect([...outboxIds].filter((id) => !seen.has(id))).toEqual([]);
    } finally {
      await sink.close();
    }
  });
});

const at = (h: { at: string }) => Date.parse(h.at);
/** The slowest order, from its first to its last history entry (the services' clocks). */
function longestSaga(views: OrderView[]): number {
  return Math.max(...views.map((v) => at(v.history[v.history.length - 1]!) - at(v.history[0]!)));
}
/** The longest gap between two orders becoming final in a row: how long the system stood still. */
function longestQuiet(views: OrderView[]): number {
  const finals = views.map((v) => at(v.history[v.history.length - 1]!)).sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < finals.length; i++) gap = Math.max(gap, finals[i]! - finals[i - 1]!);
  return gap;
}
