/**
 * PostgreSQL failover without losing events. A primary and a synchronous physical standby of it (PostgreSQL on
 * ports of their own), reached through a forwarder standing for the address clients use; the relay and the three
 * services run against it. The relay is frozen while orders are placed (so its slot is behind, as a lagging relay's
 * would be), the primary crashes, the standby is promoted: the relay's logical slot is not on it (before
 * PostgreSQL 17 slots are not replicated). Then the README's operator steps: the relay must report the missing slot
 * and not recreate it; create the slot (npm run migrate does it), reconcile every source from a minute before the
 * relay's last acknowledged commit time. Every outbox row of the promoted server must have reached the broker.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { ensureRelaySlots } from '../../cdc-relay/src/slots';
import {
  ensureRolesAndDatabases,
  layoutOf,
  loadAdminConfig,
  migrateAll,
  urlForDatabase,
} from '../../scripts/lib/admin';
import { collect } from '../support/amqp';
import { rabbitmqctl, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { createPrimaryAndStandby, freePort, startTcpProxy, type PgPair } from '../support/pg-cluster';
import { killAll, startProcess } from '../support/process';
import { sagaClient } from '../support/saga';
import { startStack, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

const SLOT_PREFIX = 'saga_outbox';
let pair: PgPair;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let env: TestEnv;
let stack: Stack | undefined;
let relayPort: number;

beforeAll(async () => {
  pair = await createPrimaryAndStandby();
  proxy = await startTcpProxy(pair.primary.port);
  const adminUrl = `postgres://postgres@127.0.0.1:${proxy.port}/postgres`;
  const admin = loadAdminConfig({ PG_ADMIN_URL: adminUrl });
  const quiet = () => undefined;
  // What `npm run setup` and `npm run migrate` do, against this cluster.
  await ensureRolesAndDatabases(admin, quiet);
  await migrateAll(admin, quiet);
  const layout = layoutOf(admin);
  const databases = {
    order: layout.databases.order,
    inventory: layout.databases.inventory,
    payment: layout.databases.payment,
  };
  await ensureRelaySlots(sourcesAs(adminUrl, databases), SLOT_PREFIX, quiet);

  const id = `tfailover_${randomBytes(3).toString('hex')}`;
  rabbitmqctl('add_vhost', id);
  const rabbit = new URL(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
  rabbitmqctl('set_permissions', '-p', id, rabbit.username || 'guest', '.*', '.*', '.*');
  rabbit.pathname = `/${id}`;
  const roleUrl = (role: string, s: ServiceName) => {
    const u = new URL(urlForDatabase(adminUrl, databases[s]));
    u.username = role;
    return u.toString();
  };
  relayPort = await freePort();
  env = {
    id,
    admin,
    databases,
    adminUrl: (s) => urlForDatabase(adminUrl, databases[s]),
    serviceUrl: (s) => roleUrl(`${s}_svc`, s),
    relayUrl: (s) => roleUrl('relay', s),
    monitorUrl: () => {
      const u = new URL(urlForDatabase(adminUrl, layout.databases.monitor));
      u.username = layout.roles.monitor;
      return u.toString();
    },
    vhost: id,
    rabbitUrl: rabbit.toString(),
    exchange: 'saga.events',
    slotPrefix: SLOT_PREFIX,
    env: {
      RABBITMQ_URL: rabbit.toString(),
      EVENTS_EXCHANGE: 'saga.events',
      RELAY_SOURCES: SERVICES.map((s) => `${s}=${roleUrl('relay', s)}`).join(','),
      RELAY_SLOT_PREFIX: SLOT_PREFIX,
      RELAY_PORT: String(relayPort),
      LOG_LEVEL: 'info',
    },
    close: async () => {
      rabbitmqctl('delete_vhost', id);
    },
  };
});

afterAll(async () => {
  await killAll();
  await proxy?.close();
  pair?.close();
  await env?.close();
});

function sourcesAs(adminUrl: string, databases: Record<ServiceName, string>) {
  return SERVICES.map((s) => ({ name: s, url: urlForDatabase(adminUrl, databases[s]) }));
}

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text)).rows;
  } finally {
    await c.end();
  }
}

describe('PostgreSQL failover to a physical standby', () => {
  it('loses no event: the relay reports the missing slot, the operator creates it and reconciles, every order and every outbox row is delivered', async () => {
    const relayBase = `http://127.0.0.1:${relayPort}`;
    const sink = await collect(env.rabbitUrl, env.exchange);
    stack = await startStack(env, { relay: { RELAY_REPLICATION_TIMEOUT_MS: '5000' } });
    const s = stack;
    const urls = () => ({
      order: s.services.order.url,
      inventory: s.services.inventory.url,
      payment: s.services.payment.url,
    });
    const saga = sagaClient(urls);
    const sku = await saga.product(1000, 100);
    const rich = await saga.account(1_000_000);
    const poor = await saga.account(150);
    const place = async (n: number) => {
      for (let i = 0; i < n; i++)
        await saga.placeEventually(i % 5 === 4 ? poor : rich, [{ sku, quantity: i % 5 === 4 ? 2 : 1 }]);
    };

    // Before: orders flow normally.
    await place(10);
    await saga.expectInvariants();

    // The relay falls behind (frozen): these orders commit on the primary and, synchronously, on the standby, but
    // the relay's slot never confirms them.
    stack.relay.child.kill('SIGSTOP');
    const behindFrom = saga.placed.length;
    await place(10);
    const behind = saga.placed.slice(behindFrom);

    // The primary crashes; the standby is promoted; the clients' address now leads to it.
    pair.primary.stop('immediate');
    await pair.standby.promote();
    proxy.retarget(pair.standby.port);
    stack.relay.child.kill('SIGCONT');

    // The relay reconnects to the promoted server, finds its slots missing, and neither creates them nor skips:
    // an error per source, relay_slot_missing 1, not ready.
    await waitUntil(
      () =>
        SERVICES.every((src) =>
          stack!.relay.logs.some((l) => l.source === src && String(l.msg).startsWith('replication slot disappeared')),
        ),
      {
        timeoutMs: 30_000,
        message: 'relay reports every slot missing',
      },
    );
    for (const src of SERVICES) expect(await metricValue(relayBase, 'relay_slot_missing', { source: src })).toBe(1);
    expect((await fetch(`${relayBase}/readyz`)).status).toBe(503);
    expect(await query(pair.standby.url(), 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    // The saga's writes go on meanwhile on the promoted server (and are not streamed by anyone yet).
    const afterFrom = saga.placed.length;
    await place(5);
    const withoutSlot = saga.placed.slice(afterFrom);

    // Operator step 1: note where each source must be reconciled from (the relay's last acknowledged commit time).
    const since: Record<string, Date> = {};
    for (const src of SERVICES) {
      const t = await metricValue(relayBase, 'relay_acknowledged_commit_timestamp_seconds', { source: src });
      expect(t).toBeGreaterThan(0);
      // A minute earlier: a transaction that started before the last acknowledged commit may have committed after it.
      since[src] = new Date((t - 60) * 1000);
    }
    // Reconciling before the slot exists would leave the rows written between the reconcile and the slot's creation
    // to nobody: the command refuses.
    const early = startProcess('cdc-relay/src/main.ts', { ...env.env, RELAY_PORT: '0' }, [
      'reconcile',
      '--source',
      'order',
      '--since',
      since.order!.toISOString(),
    ]);
    expect((await early.exited).code).not.toBe(0);
    expect(early.output()).toContain('does not exist on this server: create it first');
    // Step 2: the deploy's migrate does not create them: the slot markers, replicated to the promoted server, say
    // they existed, and a slot made now would skip what was written since.
    await ensureRelaySlots(
      sourcesAs(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`, env.databases),
      SLOT_PREFIX,
      () => undefined,
    );
    expect(await query(pair.standby.url(), 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    expect(
      sink.messages.filter((m) => m.type === 'OrderPlaced' && withoutSlot.includes(m.correlationId ?? '')),
    ).toEqual([]);
    // Step 3: the operator recovers every source: the slot is created, the window from the marker's time republished.
    const reports: Record<string, { rows: number; published: number; refused: number; invalid: number }> = {};
    for (const src of SERVICES) {
      const p = startProcess('cdc-relay/src/main.ts', { ...env.env, RELAY_PORT: '0' }, ['recover', '--source', src]);
      const { code } = await p.exited;
      const report = p.logs.find((l) => l.msg === 'reconciled') as (typeof reports)[string] | undefined;
      expect({ src, code, report: report !== undefined }).toEqual({ src, code: 0, report: true });
      reports[src] = report!;
      expect(report!.refused).toBe(0);
      expect(report!.published).toBe(report!.rows);
    }
    await waitUntil(async () => (await fetch(`${relayBase}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      message: 'relay ready again',
    });
    await place(5);

    // Every order final, invariants hold, no event applied twice (the inbox absorbed the republished copies).
    const views = await saga.expectInvariants(60_000);
    expect(views).toHaveLength(30);
    // The orders placed while the relay was behind, and while no slot existed, went through the whole saga.
    for (const id of [...behind, ...withoutSlot])
      expect(views.find((v) => v.orderId === id)?.history.length).toBeGreaterThan(1);

    // Zero loss: every outbox row of the promoted server (each a committed event, before and after the failover)
    // reached the broker at least once.
    const written: string[] = [];
    for (const src of SERVICES)
      written.push(
        ...(await query<{ id: string }>(env.adminUrl(src), 'SELECT id::text AS id FROM outbox')).map((r) => r.id),
      );
    await waitUntil(
      () => {
        const got = new Set(sink.messages.map((m) => m.id));
        return written.every((id) => got.has(id));
      },
      { timeoutMs: 30_000, message: 'every outbox row delivered' },
    ).catch(() => undefined);
    const received = new Set(sink.messages.map((m) => m.id));
    const missing = written.filter((id) => !received.has(id));
    expect(missing).toEqual([]);
    const duplicates = sink.messages.length - received.size;
    // A republished copy is the same message as the relay's: id, routing key, properties, headers and body bytes.
    const wire = (m: (typeof sink.messages)[number]) => {
      const { messageId, type, correlationId, timestamp, contentType, appId, headers, deliveryMode } = m.raw.properties;
      return {
        routingKey: m.routingKey,
        body: m.raw.content.toString('base64'),
        messageId,
        type,
        correlationId,
        timestamp,
        contentType,
        appId,
        headers,
        deliveryMode,
      };
    };
    const firstCopy = new Map<string, ReturnType<typeof wire>>();
    let compared = 0;
    for (const m of sink.messages) {
      const seen = firstCopy.get(m.id!);
      if (!seen) firstCopy.set(m.id!, wire(m));
      else {
        expect(wire(m)).toEqual(seen);
        compared++;
      }
    }
    expect(compared).toBe(duplicates);
    expect(duplicates).toBeGreaterThan(0);
    const republished = Object.values(reports).reduce((n, r) => n + r.published, 0);
    // What retention costs in space: the average outbox row (tuple data, without the page and index overhead).
    const bytes = (
      await query<{ bytes: number }>(
        env.adminUrl('order'),
        'SELECT avg(pg_column_size(o.*))::int AS bytes FROM outbox o',
      )
    )[0]!.bytes;
    console.log(
      `pg failover: ${views.length} orders (${behind.length} placed while the relay was behind, ${withoutSlot.length} while no slot existed), ` +
        `${written.length} events written, ${received.size} delivered, 0 lost, ${duplicates} duplicates ` +
        `(reconcile republished ${republished}: ${SERVICES.map((src) => `${src} ${reports[src]!.published}`).join(', ')}); ` +
        `an order service outbox row holds ${bytes} bytes`,
    );
    expect(reports.order!.published).toBeGreaterThanOrEqual(behind.length + withoutSlot.length);
    await sink.close();
    await stack.stop();
  });
});
