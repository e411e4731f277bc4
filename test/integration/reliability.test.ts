/**
 * Faults that happen in production, injected into a running stack (relay and services as processes, real
 * PostgreSQL and RabbitMQ). Each test ends by checking that every order reached a final state, no history shows an
 * event applied twice, and the stock and balance invariants hold.
 */
import pg from 'pg';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { createTestEnv, type TestEnv } from '../support/env';
import { postgres, rabbit } from '../support/faults';
import { metricValue } from '../support/metrics';
import { writeOutbox } from '../support/outbox-writer';
import { killAll, startProcess } from '../support/process';
import { as, sagaClient } from '../support/saga';
import { http, startStack, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

let env: TestEnv;
let stack: Stack;
const urls = () => ({
  order: stack.services.order.url,
  inventory: stack.services.inventory.url,
  payment: stack.services.payment.url,
});
const saga = sagaClient(urls);
const report: string[] = [];

/** 200+ orders at 8 in flight: most confirmed, some out of stock, some declined. */
async function burst(n: number, during: (progress: () => number) => Promise<string>) {
  const sku = await saga.product(Math.floor(n * 0.75), 100, 'burst');
  const rich = await saga.account(100 * n);
  const poor = await saga.account(150);
  const burst = saga.burst(n, sku, rich, poor);
  const fault = await during(burst.placed);
  await burst.done;
  return fault;
}

async function duplicatesSuppressed() {
  let n = 0;
  for (const s of SERVICES)
    n += await metricValue(stack.services[s].adminUrl, 'consumer_messages_total', { outcome: 'duplicate' }).catch(
      () => 0,
    );
  return n;
}

async function finish(name: string, faults: string) {
  const views = await saga.expectInvariants(120_000);
  const confirmed = views.filter((v) => v.status === 'CONFIRMED').length;
  report.push(
    `${name}: ${views.length} orders final so far (${confirmed} confirmed), faults: ${faults}, duplicates suppressed: ${await duplicatesSuppressed()}, lost: 0`,
  );
}

beforeAll(async () => {
  env = await createTestEnv('rel');
  stack = await startStack(env, {
    relay: { RELAY_RETRY_MAX_MS: '1000' },
    order: { CONSUMER_RETRY_BASE_MS: '50' },
    inventory: { CONSUMER_RETRY_BASE_MS: '50' },
    payment: { CONSUMER_RETRY_BASE_MS: '50' },
  });
});
afterEach(() => {
  // A process that died on its own is a finding: show why.
  for (const p of [stack.relay, ...SERVICES.map((s) => stack.services[s].proc)]) {
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      console.log(`process exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output().slice(-3000)}`);
  }
});
afterAll(async () => {
  console.log(`reliability report\n${report.join('\n')}`);
  await stack?.stop('SIGKILL');
  await killAll();
  await env?.close();
});

describe('faults', () => {
  it('a burst of 200 orders survives the relay killed with SIGKILL and restarted, twice', async () => {
    const faults = await burst(200, async (progress) => {
      for (const at of [40, 110]) {
        await waitUntil(() => progress() >= at, { timeoutMs: 60_000, message: `${at} orders placed` });
        await stack.restart('relay', 'SIGKILL');
      }
      return '2 relay SIGKILLs';
    });
    await finish('relay SIGKILL x2', faults);
  });

  it('a burst survives a service killed with SIGKILL while handling messages; its unacknowledged messages are applied once', async () => {
    const faults = await burst(200, async (progress) => {
      await waitUntil(() => progress() >= 60, { timeoutMs: 60_000 });
      await stack.restart('inventory', 'SIGKILL');
      await waitUntil(() => progress() >= 120, { timeoutMs: 60_000 });
      await stack.restart('payment', 'SIGKILL');
      return 'inventory and payment SIGKILL';
    });
    await finish('service SIGKILL', faults);
  });

  it('a database restart: HTTP answers 503 while it is down, the relay reconnects, nothing is lost', async () => {
    const seen503: number[] = [];
    // A message that meets an unreachable database is not at fault: it must not spend a retry or reach a DLQ.
    const parked = async () => {
      let n = 0;
      for (const s of SERVICES) {
        for (const outcome of ['retried', 'dead_lettered'])
          n += await metricValue(stack.services[s].adminUrl, 'consumer_messages_total', { outcome }).catch(() => 0);
      }
      return n;
    };
    const parkedBefore = await parked();
    const faults = await burst(200, async (progress) => {
      await waitUntil(() => progress() >= 50, { timeoutMs: 60_000 });
      await postgres('stop');
      try {
        const down = await http<{ error: string }>('GET', `${urls().order}/orders?limit=1`, undefined, as('c1'));
        seen503.push(down.status);
        expect(down.status).toBe(503);
        expect(JSON.stringify(down.body)).not.toMatch(/at |ECONNREFUSED|select|postgres/i);
        const ready = await http('GET', `${urls().inventory}/readyz`);
        expect(ready.status).toBe(503);
      } finally {
        await postgres('start');
      }
      return 'PostgreSQL stopped and started';
    });
    expect(seen503).toEqual([503]);
    await waitUntil(() => stack.relay.logs.filter((l) => l.msg === 'streaming').length >= 6, {
      timeoutMs: 60_000,
      message: 'relay streaming again',
    });
    await finish('database restart', faults);
    expect(await parked()).toBe(parkedBefore);
  });

  it('RabbitMQ stopped and started: orders are accepted meanwhile and complete afterwards', async () => {
    let acceptedWhileDown = 0;
    const faults = await burst(200, async (progress) => {
      await waitUntil(() => progress() >= 50, { timeoutMs: 60_000 });
      rabbit('stop_app');
      try {
        const sku = await saga.product(10, 100, 'down');
        const c = await saga.account(10_000);
        for (let i = 0; i < 5; i++) {
          await saga.place(c, [{ sku, quantity: 1 }]); // 202: the outbox holds the event
          acceptedWhileDown++;
        }
      } finally {
        rabbit('start_app');
      }
      return 'broker stopped and started';
    });
    expect(acceptedWhileDown).toBe(5);
    await finish('broker restart', `${faults} (${acceptedWhileDown} orders accepted while it was down)`);
  });

  it('SIGTERM to every process during load: each exits 0, nothing is lost', async () => {
    const codes: Record<string, number | null> = {};
    const faults = await burst(200, async (progress) => {
      for (const [i, which] of (['relay', 'inventory', 'order', 'payment'] as const).entries()) {
        await waitUntil(() => progress() >= 30 + i * 40, { timeoutMs: 60_000 });
        const proc = which === 'relay' ? stack.relay : stack.services[which as ServiceName].proc;
        const exit = proc.exited;
        await stack.restart(which, 'SIGTERM');
        codes[which] = (await exit).code;
      }
      return 'SIGTERM to relay, inventory, order, payment';
    });
    expect(codes).toEqual({ relay: 0, inventory: 0, order: 0, payment: 0 });
    await finish('graceful shutdown', faults);
  });

  it('relay down long: retained WAL shows in its metrics, and max_slot_wal_keep_size bounds it', async () => {
    // A relay that cannot reach the broker keeps its slot where it is, as a relay that is down would.
    const stuck = startProcess('cdc-relay/src/main.ts', {
      ...env.env,
      RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
      RELAY_SLOT_PREFIX: `${env.slotPrefix}_stuck`,
      RELAY_PORT: '18311',
      RELAY_RETRY_MAX_MS: '500',
    });
    const admin = new pg.Client({ connectionString: env.adminUrl('order') });
    await admin.connect();
    try {
      const metric = (name: string) => metricValue('http://127.0.0.1:18311', name, { source: 'order' });
      await waitUntil(
        async () =>
          (
            await admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
              `${env.slotPrefix}_stuck_order`,
            ])
          ).rowCount === 1,
        { message: 'slot created' },
      );
      await writeOutbox(env.serviceUrl('order'), { rows: 4000, prefix: 'wal' });
      const retained = await waitUntil(
        async () => {
          const v = await metric('relay_slot_retained_wal_bytes');
          return v > 1_000_000 ? v : undefined;
        },
        { message: 'retained WAL in the metrics' },
      );
      expect(await metric('relay_replication_lag_bytes')).toBeGreaterThan(1_000_000);
      expect(await metric('relay_slot_safe_wal_bytes')).toBe(-1); // unlimited: the server's default
      await admin.query("ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'");
      await admin.query('SELECT pg_reload_conf()');
      try {
        const safe = await waitUntil(
          async () => {
            const v = await metric('relay_slot_safe_wal_bytes');
            return v > 0 ? v : undefined;
          },
          { message: 'safe WAL size reported' },
        );
        // What can still be written before the slot is lost: about the setting (PostgreSQL counts from the last
        // removed segment, plus the one in progress), shrinking as WAL is written while the relay stays away.
        expect(safe).toBeLessThanOrEqual(1024 ** 3 + 2 * 16 * 1024 ** 2);
        await writeOutbox(env.serviceUrl('order'), { rows: 4000, prefix: 'wal2' });
        const later = await waitUntil(
          async () => {
            const v = await metric('relay_slot_safe_wal_bytes');
            return v < safe ? v : undefined;
          },
          { message: 'safe WAL size shrinking' },
        );
        expect(safe - later).toBeGreaterThan(1_000_000);
        report.push(
          `relay down long: ${retained} bytes of WAL retained, ${safe} bytes left under max_slot_wal_keep_size=1GB`,
        );
      } finally {
        await admin.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
        await admin.query('SELECT pg_reload_conf()');
      }
    } finally {
      await admin.end();
      await stuck.kill('SIGKILL');
    }
  });
});
