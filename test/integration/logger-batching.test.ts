/**
 * The logger's batched stdout (LOG_FLUSH_MS): a line logged alone still reaches stdout within a few periods while
 * the process runs on, nothing is written while nothing is logged, and what waits at exit is written.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../support/process';
import { waitUntil } from '../support/wait';

const LOGGER = path.join(ROOT, 'packages/common/src/runtime/logger.ts');

/**
 * A Node process that runs `body` with `log` (flush period 50 ms), after `beforeLogger`; its stdout and stderr so
 * far, and its exit.
 */
function child(body: string, beforeLogger = '') {
  const script = `${beforeLogger}
const { createLogger } = require(${JSON.stringify(LOGGER)});
const log = createLogger('batching-test', 'info', 50);
${body}`;
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=commonjs', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string });
  return { proc, lines, stderr: () => err, exited };
}

describe('batched log lines', () => {
  it('a line logged alone reaches stdout within a few periods, and no empty flush follows it', async () => {
    // Writes to stdout through the thread pool (sonic-boom's fs.write), counted for a second after the line: the line
    // itself, and no flush of an empty buffer every period (about 20 of them in that second).
    const c = child(
      `log.info('alone');
setTimeout(() => process.stderr.write(JSON.stringify({ writes }) + '\\n'), 1_000);
setInterval(() => undefined, 60_000);`,
      `const fs = require('node:fs');
let writes = 0;
const write = fs.write;
fs.write = function (...args) {
  writes++;
  return write.apply(this, args);
};`,
    );
    try {
      await waitUntil(() => c.lines().some((l) => l.msg === 'alone'), {
        timeoutMs: 2_000,
        message: 'the line on stdout well before 4 KiB of lines or the exit',
      });
      await waitUntil(() => c.stderr().includes('writes'), { message: 'the writes counted' });
      const { writes } = JSON.parse(c.stderr().trim()) as { writes: number };
      expect(writes).toBeGreaterThanOrEqual(1);
      expect(writes).toBeLessThanOrEqual(2);
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
