/**
 * Every component of the image answers --help (exit 0) and refuses an unknown argument (exit 2) without starting:
 * asked with a broker and database that do not exist, a component that started would hang or fail differently.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { COMPONENTS } from '../../scripts/cli';
import { ROOT } from '../support/process';

const nowhere = {
  RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
  DATABASE_URL: 'postgres://x@127.0.0.1:1/x',
  PG_ADMIN_URL: 'postgres://x@127.0.0.1:1/x',
  RELAY_SOURCES: 'order=postgres://x@127.0.0.1:1/x',
};

function saga(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'scripts/cli.ts'), ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH!, ...nowhere }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('saga <component> arguments', () => {
  const components = Object.keys(COMPONENTS);

  it.each(components)('%s --help prints its usage and exits 0 without starting', async (c) => {
    const r = await saga([c, '--help']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`usage: saga ${c}`);
    expect(r.code).toBe(0);
  });

  it.each(components)('%s refuses an unknown argument with exit 2', async (c) => {
    const r = await saga([c, '--no-such-flag']);
    expect(r.stderr).toContain('unknown argument');
    expect(r.code).toBe(2);
  });

  it('the image entry point lists every component, and refuses an unknown one', async () => {
    const help = await saga(['--help']);
    for (const c of components) expect(help.stdout).toContain(`  ${c}`);
    expect((await saga(['ordr'])).code).toBe(2);
  });
});
