/**
 * What the relay's slot and fault tests share: a test environment of their own for the file, relay processes that
 * are killed after each test (even one that failed), queries as the order database's administrator, and the slot
 * step of `npm run migrate`.
 */
import pg from 'pg';
import { SERVICES } from '@saga/common/contracts/service-names';
import { ensureRelaySlots } from '../../src/slots';
import { createTestEnv, type TestEnv } from '../../../test/support/env';
import { killAll, type Running } from '../../../test/support/process';

export type RelayTestEnv = {
  /** The file's environment (set once its beforeAll ran). */
  readonly env: TestEnv;
  /** Processes to kill after the current test. */
  running: Running[];
  /** `sql` as the order database's administrator: its rows. */
  admin: <T extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<T[]>;
  /** What every deploy runs (`npm run migrate`): the migrations are applied by createTestEnv, this is the slot step. */
  migrateSlots: (prefix: string) => Promise<string[]>;
};

/** Registers the file's hooks (create the environment, kill relays after each test, close it all) under `name`. */
export function useRelayTestEnv(name: string): RelayTestEnv {
  let env: TestEnv | undefined;
  const running: Running[] = [];
  const current = () => {
    if (!env) throw new Error('the test environment is not created yet (use it inside a test or hook)');
    return env;
  };

  beforeAll(async () => {
    env = await createTestEnv(name);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.kill('SIGKILL')));
  });
  afterAll(async () => {
    await killAll();
    await env?.close();
  });

  return {
    get env() {
      return current();
    },
    running,
    async admin<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
      const c = new pg.Client({ connectionString: current().adminUrl('order') });
      await c.connect();
      try {
        return (await c.query<T>(sql, params)).rows;
      } finally {
        await c.end();
      }
    },
    async migrateSlots(prefix: string) {
      const said: string[] = [];
      await ensureRelaySlots(
        SERVICES.map((s) => ({ name: s, url: current().adminUrl(s) })),
        prefix,
        (m) => said.push(m),
      );
      return said;
    },
  };
}
