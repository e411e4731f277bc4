/**
 * npm start: the whole stack on this machine in one command. Setup and migrations (idempotent), then the relay and
 * the services as child processes, their logs interleaved and prefixed (pretty at a terminal, JSON lines
 * otherwise); demo data when missing.
 *
 * One Ctrl-C stops everything cleanly, in order, and exits 0: the children run in process groups of their own, so
 * the terminal's SIGINT reaches only this process, which then stops the services (SIGTERM, each finishes its
 * in-flight work) and the relay last, so that what the services wrote to their outboxes while stopping is still
 * published. A second Ctrl-C kills what is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { prettyFactory } from 'pino-pretty';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { DATABASE_OWNERS, MONITOR, SERVICES, type DatabaseOwner } from '@saga/common/contracts/service-names';
import { seedIfEmpty, urls, waitReady } from './demo-data';

const ROOT = path.resolve(__dirname, '..');
type Name = 'setup' | 'migrate' | 'relay' | DatabaseOwner;
const ENTRY = (name: Name) =>
  name === 'setup' || name === 'migrate'
    ? `scripts/${name}.ts`
    : name === 'relay'
      ? 'cdc-relay/src/main.ts'
      : `services/${name}/src/main.ts`;
const COLORS = [36, 33, 32, 34, 31, 93, 96];
const color = (name: Name) =>
  name === 'setup' || name === 'migrate'
    ? 90
    : name === 'relay'
      ? 35
      : COLORS[DATABASE_OWNERS.indexOf(name) % COLORS.length]!;

const tty = process.stdout.isTTY === true;
const pretty = tty
  ? prettyFactory({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,component' })
  : undefined;
const children = new Map<Name, ChildProcess>();
let stopping = false;

/** One output line of a child: at a terminal prefixed and pretty; otherwise JSON lines as they are, text prefixed. */
function show(name: Name, line: string) {
  const isJson = line.startsWith('{');
  if (!tty) {
    process.stdout.write(isJson ? `${line}\n` : `${name.padEnd(9)}| ${line}\n`);
    return;
  }
  const text = isJson ? pretty!(line).trimEnd() : line;
  process.stdout.write(`\x1b[${color(name)}m${name.padEnd(9)}|\x1b[0m ${text}\n`);
}
const say = (m: string) =>
  tty ? process.stdout.write(`\x1b[1mstart    |\x1b[0m ${m}\n`) : process.stdout.write(`start    | ${m}\n`);

function run(name: Name, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, ENTRY(name))], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A process group of its own: Ctrl-C at the terminal reaches only this process, which stops the children in order.
    detached: true,
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        show(name, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
  }
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping && name !== 'setup' && name !== 'migrate') {
      say(`${name} exited (${signal ?? code}); stopping the stack`);
      void stop(1);
    }
  });
  return child;
}

/**
 * A child's exit code; one that died of the SIGTERM this process sent while stopping (it came before the child had
 * set up its own handling, during its start) stopped as asked: 0. Any other signal is a failure.
 */
const codeOf = (code: number | null, signal: NodeJS.Signals | null) =>
  code ?? (signal === 'SIGTERM' && stopping ? 0 : 1);
const finished = (c: ChildProcess) =>
  new Promise<number>((resolve) =>
    c.exitCode !== null || c.signalCode !== null
      ? resolve(codeOf(c.exitCode, c.signalCode))
      : c.once('exit', (code, signal) => resolve(codeOf(code, signal))),
  );

/** Stop the services (they finish in-flight messages and write their outboxes), then the relay. */
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  let failed = false;
  for (const wave of [[...DATABASE_OWNERS], ['relay'], ['setup', 'migrate']] as Name[][]) {
    const running = wave.flatMap((n) => {
      const c = children.get(n);
      return c ? [[n, c] as const] : [];
    });
    if (running.length === 0) continue;
    say(`stopping ${running.map(([n]) => n).join(', ')}`);
    for (const [, c] of running) c.kill('SIGTERM');
    const codes = await Promise.all(running.map(([, c]) => finished(c)));
    codes.forEach((exit, i) => {
      if (exit !== 0) {
        failed = true;
        say(`${running[i]![0]} exited with ${exit}`);
      }
    });
  }
  say(failed || code !== 0 ? 'stopped, with errors (see above)' : 'stopped cleanly');
  process.exit(failed ? 1 : code);
}

function onSignal() {
  if (!stopping) return void stop(0);
  say('second signal: killing what is left');
  for (const c of children.values()) c.kill('SIGKILL');
  process.exit(130);
}

async function main() {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // Should this process die without stopping them, the children (in their own groups) must not outlive it.
  process.on('exit', () => {
    for (const c of children.values()) c.kill('SIGKILL');
  });
  for (const step of ['setup', 'migrate'] as const) {
    const code = await finished(run(step));
    if (stopping) return;
    if (code !== 0) {
      say(`${step} failed; see above. npm run doctor says what the machine lacks.`);
      process.exit(code);
    }
  }
  const u = urls();
  run('relay');
  // Each service on the port of its <SERVICE>_URL (8000, 8001, ... by default), with its own <SERVICE>_DATABASE_URL
  // when one is set (else the service's default).
  for (const s of SERVICES) {
    const port = new URL(u[s]).port;
    const db = process.env[`${s.toUpperCase()}_DATABASE_URL`];
    const admin = s === 'inventory' ? u.inventoryAdmin : s === 'payment' ? u.paymentAdmin : undefined;
    const adminPort = admin ? new URL(admin).port : '';
    run(s, {
      ...(port ? { PORT: port } : {}),
      ...(adminPort ? { ADMIN_PORT: adminPort } : {}),
      ...(db ? { DATABASE_URL: db } : {}),
    });
  }
  // The saga monitor (probes on :8003, its page and API on its admin listener :8103; MONITOR_PORT,
  // MONITOR_ADMIN_PORT and MONITOR_DATABASE_URL to change): an observer, so nothing waits for it.
  const monitorDb = process.env.MONITOR_DATABASE_URL;
  const monitorAdminPort = process.env.MONITOR_ADMIN_PORT ?? '8103';
  run(MONITOR, {
    PORT: process.env.MONITOR_PORT ?? '8003',
    ADMIN_PORT: monitorAdminPort,
    ...(monitorDb ? { DATABASE_URL: monitorDb } : {}),
  });
  await Promise.all(SERVICES.map((s) => waitReady(u[s])));
  if (stopping) return;
  const added = await seedIfEmpty(u);
  if (added) say(`added ${added} demo products and accounts`);
  say(
    `ready: ${SERVICES.map((s) => `${s} ${u[s]}`).join(', ')}; saga monitor http://127.0.0.1:${monitorAdminPort}. Try: npm run demo. Ctrl-C stops.`,
  );
}

answerArgs({
  name: 'npm start',
  summary:
    'setup, migrations, the relay and every service on this machine, demo data when missing; one Ctrl-C stops it all',
  details: [
    'Output is pretty at a terminal and JSON lines otherwise (npm start | cat). npm run doctor checks the prerequisites.',
  ],
});
main().catch((err) => {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  void stop(1);
});
