/** npm run doctor and the test suite's prerequisite check: each failure names what is wrong and how to fix it. */
import { execFile } from 'node:child_process';
import { checkNode, checkPostgres, checkRabbitmq, formatChecks, nodeSupported } from '../../scripts/lib/prerequisites';
import { ADMIN_URL } from '../support/env';
import { ROOT } from '../support/process';

describe('prerequisites', () => {
  it('accepts the Node versions engines names, and no other', () => {
    for (const v of ['20.19.0', '20.20.2', '22.12.0', '24.11.1', '26.0.0']) expect(nodeSupported(v)).toBe(true);
    for (const v of ['18.20.0', '20.18.1', '21.7.0', '22.11.0', '23.1.0']) expect(nodeSupported(v)).toBe(false);
    expect(checkNode('18.20.0')).toMatchObject({ ok: false, fix: expect.stringContaining('Node 22 or 24') });
  });

  it('passes on this machine: PostgreSQL superuser with wal_level=logical', async () => {
    const checks = await checkPostgres(ADMIN_URL);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks.map((c) => c.name)).toContain('wal_level');
  });

  it('says what to fix when PostgreSQL or RabbitMQ cannot be reached', async () => {
    const pgChecks = await checkPostgres('postgres://postgres@127.0.0.1:1/postgres');
    expect(pgChecks).toEqual([
      expect.objectContaining({ ok: false, fix: expect.stringContaining('start PostgreSQL') }),
    ]);
    const mq = await checkRabbitmq('amqp://guest:guest@127.0.0.1:1');
    expect(mq).toMatchObject({ ok: false, fix: expect.stringContaining('start RabbitMQ') });
    expect(formatChecks([mq])).toMatch(
      /^FAIL {2}rabbitmq amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1: not reachable.*\n {8}fix: start RabbitMQ/,
    );
  });

  it('npm run doctor exits 1 and prints the fix when the database server is missing', async () => {
    const r = await new Promise<{ code: number | null; out: string }>((resolve) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', 'scripts/doctor.ts'],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH!, PG_ADMIN_URL: 'postgres://postgres@127.0.0.1:1/postgres' },
          timeout: 60_000,
        },
        (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout }),
      ),
    );
    expect(r.out).toMatch(/FAIL {2}postgres postgres:\/\/postgres@127\.0\.0\.1:1\/postgres: not reachable/);
    expect(r.out).toContain('fix: start PostgreSQL');
    expect(r.out).toMatch(/ok {4}rabbitmq/);
    expect(r.code).toBe(1);
  });
});
