/** Least privilege for every role, and no secret in any log line. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { SERVICES } from '@saga/common/contracts/service-names';
import { closeConnections } from '../support/amqp';
import { ADMIN_URL, createTestEnv, rabbitmqctl, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { sagaClient } from '../support/saga';
import { startMonitor, startStack, type ServiceProc, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

let env: TestEnv;

async function as(url: string, sql: string): Promise<{ ok: true } | { ok: false; code: string }> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query(sql);
    return { ok: true };
  } catch (err) {
    return { ok: false, code: (err as { code?: string }).code ?? String(err) };
  } finally {
    await c.end().catch(() => undefined);
  }
}

beforeAll(async () => {
  env = await createTestEnv('sec');
});
afterAll(async () => {
  await killAll();
  await env?.close();
});

describe('database roles', () => {
  it('each service role reaches its own database only', async () => {
    for (const s of SERVICES) {
      expect(await as(env.serviceUrl(s), 'SELECT count(*) FROM outbox')).toEqual({ ok: true });
      for (const other of SERVICES.filter((o) => o !== s)) {
        const u = new URL(env.serviceUrl(other));
        u.username = `${s}_svc`;
        expect(await as(u.toString(), 'SELECT 1')).toEqual({ ok: false, code: '42501' }); // no CONNECT privilege
      }
    }
  });

  it('service roles cannot change the schema or replicate', async () => {
    expect(await as(env.serviceUrl('order'), 'CREATE TABLE sneaky (id int)')).toEqual({ ok: false, code: '42501' });
    expect(await as(env.serviceUrl('order'), 'DROP TABLE orders')).toEqual({ ok: false, code: '42501' });
    expect(
      await as(env.serviceUrl('payment'), "SELECT pg_create_logical_replication_slot('x_sneaky', 'pgoutput')"),
    ).toEqual({ ok: false, code: '42501' });
  });

  it('the relay role reads outbox tables and nothing else, and writes nothing', async () => {
    expect(await as(env.relayUrl('order'), 'SELECT count(*) FROM outbox')).toEqual({ ok: true });
    expect(await as(env.relayUrl('order'), 'SELECT count(*) FROM orders')).toEqual({ ok: false, code: '42501' });
    expect(await as(env.relayUrl('payment'), 'SELECT count(*) FROM accounts')).toEqual({ ok: false, code: '42501' });
    expect(
      await as(
        env.relayUrl('inventory'),
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'a', 'b', 'c', '{}', '{}')",
      ),
    ).toEqual({ ok: false, code: '42501' });
  });

  it('no role used at run time is a superuser; only the relay may replicate', async () => {
    const c = new pg.Client({ connectionString: ADMIN_URL });
    await c.connect();
    const { rows } = await c.query<{
      rolname: string;
      rolsuper: boolean;
      rolreplication: boolean;
      rolcreatedb: boolean;
      rolcreaterole: boolean;
    }>(
      "SELECT rolname, rolsuper, rolreplication, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname IN ('order_svc','inventory_svc','payment_svc','relay') ORDER BY 1",
    );
    await c.end();
    expect(rows).toEqual([
      { rolname: 'inventory_svc', rolsuper: false, rolreplication: false, rolcreatedb: false, rolcreaterole: false },
      { rolname: 'order_svc', rolsuper: false, rolreplication: false, rolcreatedb: false, rolcreaterole: false },
      { rolname: 'payment_svc', rolsuper: false, rolreplication: false, rolcreatedb: false, rolcreaterole: false },
      { rolname: 'relay', rolsuper: false, rolreplication: true, rolcreatedb: false, rolcreaterole: false },
    ]);
  });
});

describe('listeners: what customers can reach', () => {
  let stack: Stack | undefined;
  let monitor: ServiceProc | undefined;
  beforeAll(async () => {
    stack = await startStack(env);
    monitor = await startMonitor(env);
  });
  afterAll(async () => {
    await stack?.stop();
    await monitor?.proc.kill('SIGTERM');
  });
  const status = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(10_000) })).status;

  it('every service and the monitor serve /metrics on the admin listener only, the public port answers 404', async () => {
    const all = { ...stack!.services, monitor: monitor! };
    for (const [name, p] of Object.entries(all)) {
      expect({ name, status: await status(`${p.url}/metrics`) }).toEqual({ name, status: 404 });
      const admin = await fetch(`${p.adminUrl}/metrics`);
      expect({ name, status: admin.status }).toEqual({ name, status: 200 });
      expect(await admin.text()).toContain(`component="${name}"`);
      // The probes stay on the public port (kubelet, compose healthchecks).
      expect({ name, status: await status(`${p.url}/healthz`) }).toEqual({ name, status: 200 });
      // A public OpenAPI document does not name /metrics.
      const doc = await fetch(`${p.url}/openapi.json`);
      if (doc.status === 200)
        expect(Object.keys(((await doc.json()) as { paths: object }).paths)).not.toContain('/metrics');
    }
  });

  it("payment's account balances are administration: 404 on the public port, served on the admin listener", async () => {
    const s = stack!;
    const saga = sagaClient(() => ({
      order: s.services.order.url,
      inventory: s.services.inventory.url,
      payment: s.services.payment.url,
    }));
    const customer = await saga.account(1234);
    expect(await status(`${s.services.payment.url}/accounts/${customer}`)).toBe(404);
    const admin = await fetch(`${s.services.payment.adminUrl}/accounts/${customer}`);
    expect(admin.status).toBe(200);
    expect(await admin.json()).toEqual({ customerId: customer, balanceCents: 1234 });
  });

  it("the monitor's page and API are on its admin listener only; its public port serves the probes", async () => {
    const m = monitor!;
    for (const p of ['/', '/monitor.js', '/sagas', '/stats', '/openapi.json'])
      expect({ p, status: await status(`${m.url}${p}`) }).toEqual({ p, status: 404 });
    expect(await status(`${m.url}/readyz`)).toBe(200);
    const page = await fetch(`${m.adminUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await status(`${m.adminUrl}/sagas`)).toBe(200);
  });
});

describe('secrets', () => {
  it('no password appears in the logs of a full run, errors included', async () => {
    const dbPassword = `pw-${randomBytes(8).toString('hex')}`;
    const mqUser = `${env.id}_user`;
    const mqPassword = `mq-${randomBytes(8).toString('hex')}`;
    rabbitmqctl('add_user', mqUser, mqPassword);
    rabbitmqctl('set_permissions', '-p', env.vhost, mqUser, '.*', '.*', '.*');
    let stack: Stack | undefined;
    try {
      const withPassword = (u: string) => {
        const x = new URL(u);
        x.password = dbPassword; // the local server trusts 127.0.0.1, so any password is accepted, and must stay unseen
        return x.toString();
      };
      const rabbit = new URL(env.rabbitUrl);
      rabbit.username = mqUser;
      rabbit.password = mqPassword;
      const secretEnv = { RABBITMQ_URL: rabbit.toString() };
      env.env.RELAY_SOURCES = SERVICES.map((s) => `${s}=${withPassword(env.relayUrl(s))}`).join(',');
      env.env.RABBITMQ_URL = rabbit.toString();
      stack = await startStack(env, {
        relay: secretEnv,
        order: { ...secretEnv, DATABASE_URL: withPassword(env.serviceUrl('order')) },
        inventory: { ...secretEnv, DATABASE_URL: withPassword(env.serviceUrl('inventory')) },
        payment: { ...secretEnv, DATABASE_URL: withPassword(env.serviceUrl('payment')) },
      });
      const s = stack;
      const saga = sagaClient(() => ({
        order: s.services.order.url,
        inventory: s.services.inventory.url,
        payment: s.services.payment.url,
      }));
      const sku = await saga.product(5, 100);
      const c = await saga.account(1000);
      await saga.finalOrder(await saga.place(c, [{ sku, quantity: 1 }]));
      // Errors get logged too: drop every broker connection and wait for the processes to say so and recover.
      expect(closeConnections(env.vhost, '')).toBeGreaterThanOrEqual(4);
      await waitUntil(() => s.relay.logs.some((l) => l.msg === 'session ended with an error'), {
        message: 'relay logged the failure',
      });
      await saga.finalOrder(await saga.place(c, [{ sku, quantity: 1 }]), 60_000);
      const all = [s.relay, ...SERVICES.map((x) => s.services[x].proc)].map((p) => p.output()).join('\n');
      expect(all.length).toBeGreaterThan(2000);
      expect(all).toContain('"level":"warn"');
      expect(all).not.toContain(dbPassword);
      expect(all).not.toContain(mqPassword);
    } finally {
      await stack?.stop();
      rabbitmqctl('delete_user', mqUser);
    }
  });
});
