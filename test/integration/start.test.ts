/**
 * npm start as a person uses it: it comes up, and one Ctrl-C (SIGINT to the terminal's foreground process group)
 * stops the services, then the relay, and exits 0; without a terminal the logs are JSON lines.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { ADMIN_URL, createTestEnv, type TestEnv } from '../support/env';
import { ROOT } from '../support/process';
import { waitUntil } from '../support/wait';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('start');
});
afterAll(() => env?.close());

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** `npm start` as a terminal's foreground job, on free ports, against the test's databases and vhost. */
async function startNpmStart() {
  const [order, inventory, payment, relay, monitorPort, monitorAdmin, inventoryAdmin, paymentAdmin] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/start.ts'], {
    cwd: ROOT,
    // Its own process group, as a shell gives a foreground job: the SIGINT below goes to the whole group.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH!,
      ...env.env,
      PG_ADMIN_URL: ADMIN_URL,
      ORDER_DB_NAME: env.databases.order,
      INVENTORY_DB_NAME: env.databases.inventory,
      PAYMENT_DB_NAME: env.databases.payment,
      MONITOR_DB_NAME: env.admin.MONITOR_DB_NAME,
      MONITOR_DATABASE_URL: env.monitorUrl(),
      MONITOR_PORT: String(monitorPort),
      MONITOR_ADMIN_PORT: String(monitorAdmin),
      RELAY_PORT: String(relay),
      ORDER_URL: `http://127.0.0.1:${order}`,
      INVENTORY_URL: `http://127.0.0.1:${inventory}`,
      PAYMENT_URL: `http://127.0.0.1:${payment}`,
      INVENTORY_ADMIN_URL: `http://127.0.0.1:${inventoryAdmin}`,
      PAYMENT_ADMIN_URL: `http://127.0.0.1:${paymentAdmin}`,
    },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Any exit code but 0 comes with the output's end, which says which child failed and how. */
const exitReport = (code: number | null, out: string) => `exit ${code}\n${code === 0 ? '' : out.slice(-6000)}`;

describe('npm start', () => {
  it('one Ctrl-C stops the services, then the relay, cleanly, exit 0', async () => {
    const { child, output, exited } = await startNpmStart();
    try {
      await waitUntil(() => output().includes('start    | ready:'), {
        timeoutMs: 90_000,
        message: 'npm start ready',
      });
      const jsonLines = output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { component?: string });
      expect(jsonLines.some((l) => l.component === 'order')).toBe(true);
      expect(jsonLines.some((l) => l.component === 'monitor')).toBe(true);
      process.kill(-child.pid!, 'SIGINT');
      expect(exitReport(await exited, output())).toBe('exit 0\n');
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
    const out = output();
    expect(out).not.toContain('second signal');
    expect(out).toContain('start    | stopped cleanly');
    const services = out.indexOf('start    | stopping order, inventory, payment');
    const relayStop = out.indexOf('start    | stopping relay');
    expect(services).toBeGreaterThan(0);
    expect(relayStop).toBeGreaterThan(services);
  });

  it("one Ctrl-C at setup's first line stops what has started, exit 0", async () => {
    const { child, output, exited } = await startNpmStart();
    try {
      await waitUntil(() => output().includes('setup    |'), {
        timeoutMs: 60_000,
        message: "setup's first line",
      });
      process.kill(-child.pid!, 'SIGINT');
      expect(exitReport(await exited, output())).toBe('exit 0\n');
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
    expect(output()).toContain('start    | stopped cleanly');
  });
});
