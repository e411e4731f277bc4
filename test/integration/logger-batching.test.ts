/**
 * The logger's batched stdout (LOG_FLUSH_MS): a line logged alone still reaches stdout within the period while the
 * process runs on, and what waits at exit is written.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../support/process';
import { waitUntil } from '../support/wait';

const LOGGER = path.join(ROOT, 'packages/common/src/runtime/logger.ts');

/** A Node process that runs `body` with `log` (flush period 50 ms); its stdout so far, and its exit. */
function child(body: string) {
  const script = `const { createLogger } = require(${JSON.stringify(LOGGER)});
const log = createLogger('batching-test', 'info', 50);
${body}`;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=commonjs', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string });
  return { proc, lines, exited };
}

describe('batched log lines', () => {
  it('a line logged alone reaches stdout within the flush period while the process runs on', async () => {
    const c = child(`log.info('alone'); setInterval(() => undefined, 60_000);`);
    try {
      await waitUntil(() => c.lines().some((l) => l.msg === 'alone'), { message: 'the line on stdout' });
      expect(c.proc.exitCode).toBeNull();
    } finally {
      c.proc.kill('SIGKILL');
      await c.exited;
    }
  });

  it('lines still waiting when the process exits are written', async () => {
    const c = child(`for (let i = 0; i < 3; i++) log.info('line ' + i); process.exit(0);`);
    expect(await c.exited).toBe(0);
    expect(c.lines().map((l) => l.msg)).toEqual(['line 0', 'line 1', 'line 2']);
  });
});
