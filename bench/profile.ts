/**
 * npm run bench:profile [-- --secs=10 --conc=64 | --rate=200]
 * Where the time goes: the production bundle under the saga's closed loop (or, with --rate, an open loop of that
 * many orders per second, the everyday case) with V8's CPU profiler on in every component, then, from the first
 * POST until every order is final (not start-up, set-up or the final checks), self time per process grouped by
 * package (pg, amqplib, express, pino, zod, our code, GC, …), the heaviest functions, and the heaviest with what
 * they call. Profiles are kept under bench/results/profile-<time>/ for Chrome DevTools.
 */
import { readdirSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { createTestEnv } from '../test/support/env';
import removeLeftovers from '../test/support/global-setup';
import { killAll } from '../test/support/process';
import { sagaClient } from '../test/support/saga';
import { bundled, nodeFlags, startStack } from '../test/support/stack';
import { monotonicUs, summarizeProfile as summarize } from './cpuprofile';
import pg from 'pg';
import { waitUntil } from '../test/support/wait';
import { now } from './lib';

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const SECS = arg('secs', 10);
const CONC = arg('conc', 64);
const RATE = arg('rate', 0);

async function main() {
  execFileSync('npm', ['run', 'build', '-s'], { cwd: path.resolve(__dirname, '..'), stdio: 'inherit' });
  bundled.use = true;
  await removeLeftovers();
  const dir = path.resolve(__dirname, 'results', `profile-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  nodeFlags.of = (c) => ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, c)}`];
  for (const c of [...SERVICES, 'relay']) mkdirSync(path.join(dir, c), { recursive: true });
  const env = await createTestEnv('profile');
  try {
    // A profile of what an order costs: no POST is refused for the saga's backlog here (the bench's overload loop
    // measures admission), so the closed loop keeps its shape.
    const stack = await startStack(env, { order: { ORDER_PENDING_MAX: '1000000' } });
    const urls = () => ({
      order: stack.services.order.url,
      inventory: stack.services.inventory.url,
      payment: stack.services.payment.url,
    });
    const saga = sagaClient(urls);
    const skus = await Promise.all(Array.from({ length: 20 }, () => saga.product(1_000_000_000, 100)));
    const customers = await Promise.all(Array.from({ length: 50 }, () => saga.account(1_000_000_000_000)));
    const deadline = now() + SECS * 1000;
    const window = { fromUs: monotonicUs(), toUs: Infinity };
    let n = 0;
    const placeNext = () => {
      const i = n++;
      return saga.place(customers[i % customers.length]!, [{ sku: skus[i % skus.length]!, quantity: 1 }]);
    };
    if (RATE > 0) {
      // Open loop: one POST every 1/RATE s whatever the answers, as customers arrive.
      const sent: Promise<unknown>[] = [];
      const start = now();
      for (let i = 0; now() < deadline; i++) {
        const wait = start + (i * 1000) / RATE - now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const placing = placeNext();
        placing.catch(() => undefined); // awaited below; a failure must not go unhandled in the meantime
        sent.push(placing);
      }
      await Promise.all(sent);
    } else
      await Promise.all(
        Array.from({ length: CONC }, async () => {
          while (now() < deadline) await placeNext();
        }),
      );
    // The window ends when the last order is final, not at the last 202: the consumers' and the relay's work for the
    // orders placed belongs in it (a closed loop places faster than the saga completes).
    const orders = new pg.Pool({ connectionString: env.serviceUrl('order'), max: 1 });
    await waitUntil(
      async () =>
        (await orders.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE status = 'PENDING'")).rows[0]!
          .n === 0,
      { timeoutMs: 300_000, intervalMs: 100, message: 'every order final' },
    ).finally(() => orders.end());
    window.toUs = monotonicUs();
    await saga.expectInvariants(300_000);
    await stack.stop('SIGTERM');
    console.log(
      `${n} orders in ${SECS} s ${RATE > 0 ? `at ${RATE}/s` : `at ${CONC} connections`}; profiles in ${dir}\n`,
    );
    for (const c of [...SERVICES, 'relay'] as (ServiceName | 'relay')[]) {
      const files = readdirSync(path.join(dir, c)).filter((f) => f.endsWith('.cpuprofile'));
      for (const f of files) {
        const s = summarize(path.join(dir, c, f), window);
        console.log(
          `== ${c}: ${s.totalMs.toFixed(0)} ms sampled from the first POST until every order was final, ${s.busyMs.toFixed(0)} ms busy, ${(s.busyMs / n).toFixed(2)} ms busy per order\n-- by package\n${s.groups.join('\n')}\n-- heaviest functions\n${s.functions.join('\n')}\n-- heaviest with what they call\n${s.inclusive.join('\n')}\n`,
        );
      }
    }
  } finally {
    await killAll();
    await env.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
