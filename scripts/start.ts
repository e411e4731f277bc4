/**
 * npm start: the whole stack on this machine in one command. Setup and migrations (idempotent), then the relay and
 * the three services as child processes with their logs interleaved and prefixed; demo data when empty.
 * Ctrl-C (or SIGTERM) stops everything cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { seedIfEmpty, urls } from './demo-data';

const ROOT = path.resolve(__dirname, '..');
const COLORS = { setup: 90, migrate: 90, relay: 35, order: 36, inventory: 33, payment: 32 } as const;
type Name = keyof typeof COLORS;
const ENTRY: Record<Name, string> = {
  setup: 'scripts/setup.ts',
  migrate: 'scripts/migrate.ts',
  relay: 'cdc-relay/src/main.ts',
  order: 'services/order/src/main.ts',
  inventory: 'services/inventory/src/main.ts',
  payment: 'services/payment/src/main.ts',
};

const children = new Map<Name, ChildProcess>();
let stopping = false;

function run(name: Name): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, ENTRY[name])], { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = process.stdout.isTTY ? `\x1b[${COLORS[name]}m${name.padEnd(9)}|\x1b[0m ` : `${name.padEnd(9)}| `;
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        process.stdout.write(prefix + buf.slice(0, i) + '\n');
        buf = buf.slice(i + 1);
      }
    });
  }
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping && name !== 'setup' && name !== 'migrate') {
      console.error(`${name} exited (${signal ?? code}); stopping the stack`);
      void stop(1);
    }
  });
  return child;
}

const finished = (c: ChildProcess) => new Promise<number>((resolve) => c.on('exit', (code) => resolve(code ?? 1)));

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  const all = [...children.values()];
  for (const c of all) c.kill('SIGTERM');
  await Promise.all(all.map(finished));
  process.exit(code);
}

async function waitReady(url: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not become ready`);
}

async function main() {
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  for (const step of ['setup', 'migrate'] as const) {
    const code = await finished(run(step));
    if (code !== 0) {
      console.error(`${step} failed; see above`);
      process.exit(code);
    }
  }
  for (const name of ['relay', 'order', 'inventory', 'payment'] as const) run(name);
  const u = urls();
  await Promise.all([waitReady(u.order), waitReady(u.inventory), waitReady(u.payment)]);
  const added = await seedIfEmpty(u);
  if (added) console.log(`start    | added ${added} demo products and accounts`);
  console.log(`start    | ready: order ${u.order}, inventory ${u.inventory}, payment ${u.payment}. Try: npm run demo. Ctrl-C stops.`);
}

main().catch((err) => {
  console.error(err);
  void stop(1);
});
