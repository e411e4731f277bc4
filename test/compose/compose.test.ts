/**
 * docker-compose.yml as a new user runs it, on a real Docker Engine and Compose: everything goes healthy, the demo
 * gives its three outcomes, the relay survives a SIGKILL under load without losing or doubling anything, and
 * `down -v` leaves nothing behind. Run by `npm run test:compose` (which first makes sure an engine answers).
 */
import path from 'node:path';
import { waitUntil } from '../support/wait';
import { ROOT } from '../support/process';
import {
  APP_IMAGE,
  baseImages,
  buildCommand,
  defaultServices,
  defineStack,
  npmCafile,
  sh,
  type Inspect,
  type Stack,
} from './stack';
import { devAuthHeader } from '@saga/common/http/dev-token';

const ONE_SHOTS = ['setup', 'migrate', 'seed'];
const figures: string[] = [];
const note = (line: string) => {
  figures.push(line);
  process.stderr.write(`compose test: ${line}\n`);
};

let stack: Stack;
let downDone = false;

function logsOf(service: string): string {
  try {
    return stack.compose(['logs', '--no-color', '--tail', '60', service], 30_000).out;
  } catch (err) {
    return String(err);
  }
}

/** Every long-running container healthy and every one-shot exited 0; a one-shot that failed fails at once. */
function stackReady(): boolean {
  const cs = stack.containers();
  for (const [service, c] of cs) {
    if (ONE_SHOTS.includes(service) && c.State.Status === 'exited' && c.State.ExitCode !== 0)
      throw new Error(`${service} exited with ${c.State.ExitCode}:\n${logsOf(service)}`);
  }
  const done = (s: string, c: Inspect | undefined) =>
    ONE_SHOTS.includes(s)
      ? c?.State.Status === 'exited' && c.State.ExitCode === 0
      : c?.State.Health?.Status === 'healthy';
  return Object.keys(defaultServices()).every((s) => done(s, cs.get(s)));
}

const url = (port: number, p: string) => `http://127.0.0.1:${port}${p}`;

async function json<T>(u: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(u, init);
  return { status: res.status, body: (await res.json()) as T };
}

beforeAll(async () => {
  const started = Date.now();
  const standins = sh(['bash', path.join(ROOT, 'test/compose/standins/build.sh'), ...baseImages()], {
    timeoutMs: 10 * 60_000,
  }).out.trim();
  for (const line of standins.split('\n')) note(`image ${line}`);
  const build = buildCommand();
  const cafile = npmCafile();
  const buildStarted = Date.now();
  sh([build.cmd, 'build', '-q', ...(cafile ? ['--secret', `id=npm_ca,src=${cafile}`] : []), '-t', APP_IMAGE, ROOT], {
    env: build.env,
    timeoutMs: 10 * 60_000,
  });
  note(
    `app image built in ${((Date.now() - buildStarted) / 1000).toFixed(1)} s (images ready after ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  const size = Number(sh(['docker', 'image', 'inspect', '-f', '{{.Size}}', APP_IMAGE]).out.trim());
  note(`app image ${APP_IMAGE}: ${(size / 1e6).toFixed(0)} MB`);
  stack = await defineStack();
  note(`project ${stack.project}, ports ${JSON.stringify(stack.ports)}`);
}, 25 * 60_000);

afterAll(() => {
  if (stack && !downDone) stack.compose(['down', '-v', '--remove-orphans', '--timeout', '10'], 180_000);
  process.stderr.write(`\ncompose test figures:\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
}, 200_000);

describe('docker-compose.yml on a real Docker Engine', () => {
  it('goes healthy: every healthcheck passes; setup, migrate and seed complete', async () => {
    const up = Date.now();
    try {
      // Compose waits for each depends_on condition (healthy, completed) before starting what depends on it.
      stack.compose(['up', '-d', '--no-build'], 6 * 60_000);
    } catch (err) {
      throw new Error(`${String(err)}\nsetup:\n${logsOf('setup')}\nmigrate:\n${logsOf('migrate')}`, { cause: err });
    }
    await waitUntil(() => stackReady(), { timeoutMs: 5 * 60_000, intervalMs: 1000, message: 'every service healthy' });
    note(`up -> healthy (seed done): ${((Date.now() - up) / 1000).toFixed(1)} s`);
    const stats = sh([
      'docker',
      'stats',
      '--no-stream',
      '--format',
      '{{.Name}}\t{{.MemUsage}}',
      ...[...stack.containers().values()].filter((c) => c.State.Status === 'running').map((c) => c.Id),
    ]).out;
    for (const line of stats.trim().split('\n')) note(`memory at rest: ${line.replace(`${stack.project}_`, '')}`);
  });

  it('npm run demo from the host gives its three outcomes, and the monitor shows those sagas', async () => {
    const p = stack.ports;
    const demo = sh(['npm', 'run', '--silent', 'demo'], {
      env: {
        ORDER_URL: url(p.ORDER, ''),
        INVENTORY_URL: url(p.INVENTORY, ''),
        PAYMENT_URL: url(p.PAYMENT, ''),
        INVENTORY_ADMIN_URL: url(p.INVENTORY_ADMIN, ''),
        PAYMENT_ADMIN_URL: url(p.PAYMENT_ADMIN, ''),
      },
      timeoutMs: 120_000,
    }).out;
    expect(demo).toMatch(/1\. succeeds[^\n]*\n(?:[^\n]*\n)*?\s*=> CONFIRMED/);
    expect(demo).toMatch(/2\. out of stock[^\n]*\n(?:[^\n]*\n)*?\s*=> CANCELLED \(OUT_OF_STOCK\)/);
    expect(demo).toMatch(/3\. declined[^\n]*\n(?:[^\n]*\n)*?\s*=> CANCELLED \(PAYMENT_DECLINED\)/);
    const ids = [...demo.matchAll(/order ([0-9a-f-]{36}) by/g)].map((m) => m[1]!);
    expect(ids).toHaveLength(3);
    const statuses = await waitUntil(
      async () => {
        const sagas = await Promise.all(
          ids.map((id) => json<{ status: string; settled: boolean }>(url(p.MONITOR_ADMIN, `/sagas/${id}`))),
        );
        return sagas.every((s) => s.status === 200 && s.body.settled) ? sagas.map((s) => s.body.status) : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, message: 'the monitor showing the demo sagas settled' },
    );
    expect(statuses).toEqual(['CONFIRMED', 'CANCELLED', 'CANCELLED']);
  });

  it('the relay SIGKILLed under 20 orders/s comes back: every order final, none applied twice, stock and money conserved', async () => {
    const p = stack.ports;
    const sku = 'compose-load';
    const customer = 'compose-load';
    const stock = 150;
    const price = 100;
    const balance = 1_000_000;
    const put = async (u: string, body: unknown) => {
      const res = await fetch(u, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`PUT ${u}: ${res.status} ${await res.text()}`);
    };
    // Administration is on the admin listeners (published on loopback only).
    await put(url(p.INVENTORY_ADMIN, `/products/${sku}`), { name: 'Compose load', priceCents: price, stock });
    await put(url(p.PAYMENT_ADMIN, `/accounts/${customer}`), { balanceCents: balance });

    // 240 orders at 20/s (more than the stock: some are cancelled, which exercises the compensation); the relay is
    // killed after the 60th and started again after the 120th, so orders keep coming while it is down.
    const total = 240;
    const relay = stack.containers().get('relay')!;
    const placed: Promise<string>[] = [];
    const t0 = Date.now();
    for (let i = 0; i < total; i++) {
      const due = t0 + i * 50;
      if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
      if (i === 60) sh(['docker', 'kill', '--signal', 'KILL', relay.Id]);
      if (i === 120) sh(['docker', 'start', relay.Id]);
      placed.push(
        json<{ orderId: string }>(url(p.ORDER, '/orders'), {
          method: 'POST',
          // The stack's order service accepts the development issuer's tokens, as npm run demo uses them.
          headers: { 'content-type': 'application/json', ...devAuthHeader(customer) },
          body: JSON.stringify({ customerId: customer, items: [{ sku, quantity: 1 }] }),
        }).then((r) => {
          if (r.status !== 202) throw new Error(`POST /orders: ${r.status} ${JSON.stringify(r.body)}`);
          return r.body.orderId;
        }),
      );
    }
    const ids = await Promise.all(placed);
    note(`load: ${total} orders in ${((Date.now() - t0) / 1000).toFixed(1)} s, relay killed and started again`);
    await waitUntil(() => stack.containers().get('relay')?.State.Health?.Status === 'healthy', {
      timeoutMs: 240_000,
      intervalMs: 1000,
      message: 'the relay healthy again',
    });
    const q = (service: string, db: string, sql: string) => stack.psql(service, db, sql);
    const drained = Date.now();
    await waitUntil(
      () =>
        q(
          'postgres-order',
          'orders',
          `SELECT count(*) FROM orders WHERE customer_id = '${customer}' AND status = 'PENDING'`,
        ) === '0',
      { timeoutMs: 120_000, intervalMs: 1000, message: 'every load order final' },
    );
    note(`every order final ${((Date.now() - drained) / 1000).toFixed(1)} s after the load ended`);
    const [count, confirmed, cancelled, confirmedCents] = q(
      'postgres-order',
      'orders',
      `SELECT count(*), count(*) FILTER (WHERE status = 'CONFIRMED'), count(*) FILTER (WHERE status = 'CANCELLED'),
              coalesce(sum(total_cents) FILTER (WHERE status = 'CONFIRMED'), 0) FROM orders WHERE customer_id = '${customer}'`,
    )
      .split('|')
      .map(Number);
    expect(count).toBe(new Set(ids).size);
    expect(count).toBe(total);
    expect(confirmed! + cancelled!).toBe(total);
    expect(confirmed).toBeGreaterThan(0);
    expect(cancelled).toBeGreaterThan(0);
    // Stock: what is left plus what confirmed orders took is what there was; nothing still held.
    const [available, reserved, committed] = q(
      'postgres-inventory',
      'inventory',
      `SELECT p.available, p.reserved, (SELECT coalesce(sum(quantity), 0) FROM reservations r WHERE r.sku = p.sku AND r.status = 'COMMITTED')
         FROM products p WHERE p.sku = '${sku}'`,
    )
      .split('|')
      .map(Number);
    expect({ available, reserved, committed }).toEqual({
      available: stock - confirmed!,
      reserved: 0,
      committed: confirmed,
    });
    // Money: one authorized payment per confirmed order, and the balance down by exactly their totals.
    const [authorized, authorizedCents, left] = q(
      'postgres-payment',
      'payment',
      `SELECT count(*) FILTER (WHERE status = 'AUTHORIZED'), coalesce(sum(amount_cents) FILTER (WHERE status = 'AUTHORIZED'), 0),
              (SELECT balance_cents FROM accounts WHERE customer_id = '${customer}') FROM payments WHERE customer_id = '${customer}'`,
    )
      .split('|')
      .map(Number);
    expect({ authorized, authorizedCents, left }).toEqual({
      authorized: confirmed,
      authorizedCents: confirmedCents,
      left: balance - confirmedCents!,
    });
  });

  it('down -v leaves no container, volume or network behind', () => {
    stack.compose(['down', '-v', '--remove-orphans', '--timeout', '10'], 180_000);
    downDone = true;
    const label = `label=com.docker.compose.project=${stack.project}`;
    expect(sh(['docker', 'ps', '-aq', '--filter', label]).out.trim()).toBe('');
    expect(sh(['docker', 'volume', 'ls', '-q', '--filter', label]).out.trim()).toBe('');
    expect(sh(['docker', 'network', 'ls', '-q', '--filter', label]).out.trim()).toBe('');
  });
});
