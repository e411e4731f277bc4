import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitUntil } from './wait';

export const ROOT = path.resolve(__dirname, '../..');

export type Running = {
  child: ChildProcess;
  pid: number;
  /** Every JSON log line the process printed so far. */
  logs: Record<string, unknown>[];
  /** Raw output, for failure messages. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog: (
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ) => Promise<Record<string, unknown>>;
  kill: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Stop keeping what the process prints (it is still read, so the process never blocks on a full pipe). For the
   * benchmarks: parsing and keeping every log line of a busy stack costs the measuring process CPU and GC pauses
   * that would show up as latency of the system under test.
   */
  discardOutput: () => void;
};

/**
 * Start an entry point as a real child process: TypeScript with `node --import tsx`, not `npx tsx` (npx runs the
 * program in a child process of its own, so a signal sent to the npx pid, SIGKILL included, leaves the program
 * running), JavaScript (the production bundle) with plain node.
 */
const alive = new Set<ChildProcess>();
/** Kill whatever a test file started and did not stop (a failed test must not leave processes behind). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...alive].map(
      (c) =>
        new Promise<void>((resolve) => {
          c.once('exit', () => resolve());
          c.kill('SIGKILL');
        }),
    ),
  );
}
process.on('exit', () => {
  for (const c of alive) c.kill('SIGKILL');
});

/**
 * How components are started. `node`: the binary, this process's own unless a benchmark names another (`--node=`).
 * `ownSession`: each in a session of its own (setsid), so that Linux's automatic scheduling groups (autogroup) give
 * it a CPU share of its own, as a container's cgroup does; otherwise every component shares this process's group.
 */
export const runtime = { node: process.execPath, ownSession: false };

export function startProcess(
  entry: string,
  env: Record<string, string>,
  args: string[] = [],
  nodeArgs: string[] = [],
): Running {
  const child = spawn(
    runtime.node,
    [...nodeArgs, ...(entry.endsWith('.ts') ? ['--import', 'tsx'] : []), path.join(ROOT, entry), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: runtime.ownSession,
    },
  );
  alive.add(child);
  child.on('exit', () => alive.delete(child));
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  let buf = '';
  let keep = true;
  const onData = (chunk: Buffer) => {
    if (!keep) return;
    raw += chunk.toString();
    if (raw.length > 2_000_000) raw = raw.slice(-1_000_000);
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        logs.push(JSON.parse(line));
      } catch {
        /* not a JSON line */
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', (c: Buffer) => {
    raw += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    pid: child.pid!,
    logs,
    output: () => raw,
    exited,
    waitForLog: (pred, timeoutMs = 30_000) =>
      waitUntil(() => logs.find(pred), { timeoutMs, message: `log line in ${entry}` }),
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    discardOutput: () => {
      keep = false;
      buf = '';
    },
  };
}
