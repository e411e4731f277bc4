/**
 * The PostgreSQL servers docker-compose.yml and k8s/base start must be servers that setup and migrate accept as they
 * are: in a container, setup cannot restart PostgreSQL, and a `-c` on the server's command line beats ALTER SYSTEM
 * anyway. Each server here is a scratch cluster started with exactly the `-c` settings read from the file, and setup
 * and migrate run against them as the compose services and the k8s Job run them: no restart command, nothing local.
 */
import { randomBytes } from 'node:crypto';
import { DATABASE_OWNERS, type DatabaseOwner } from '@saga/common/contracts/service-names';
import { rabbitmqctl } from '../support/env';
import {
  asServerOptions,
  composePostgresSettings,
  k8sPostgresSettings,
  type ServerSettings,
} from '../support/deployment-postgres';
import { createServers, type PgServers } from '../support/pg-cluster';
import { startProcess } from '../support/process';

// Nothing that would let setup restart a server: no restart command, and the servers are not Debian clusters.
delete process.env.PG_RESTART_COMMAND;
const RABBIT = new URL(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');

/** Start a server per database owner with its settings, run setup then migrate; the output of both. */
async function setupAndMigrate(settings: ServerSettings): Promise<{ setup: string; migrate: string }> {
  const clusters: PgServers[] = [];
  const vhost = `tsettings_${randomBytes(3).toString('hex')}`;
  try {
    const urls = {} as Record<DatabaseOwner, string>;
    for (const s of DATABASE_OWNERS) {
      const c = await createServers([`postgres-${s}`], asServerOptions(settings[s]));
      clusters.push(c);
      urls[s] = c.servers[0]!.url();
    }
    rabbitmqctl('add_vhost', vhost);
    rabbitmqctl('set_permissions', '-p', vhost, RABBIT.username || 'guest', '.*', '.*', '.*');
    const rabbit = new URL(RABBIT.toString());
    rabbit.pathname = `/${vhost}`;
    const env: Record<string, string> = {
      PG_ADMIN_URL: urls.order,
      ...Object.fromEntries(DATABASE_OWNERS.map((s) => [`${s.toUpperCase()}_PG_ADMIN_URL`, urls[s]])),
      ...Object.fromEntries(DATABASE_OWNERS.map((s) => [`${s.toUpperCase()}_DB_PASSWORD`, `${s}-test-password`])),
      RELAY_DB_PASSWORD: 'relay-test-password',
      RABBITMQ_URL: rabbit.toString(),
      EVENTS_EXCHANGE: 'saga.events',
      LOG_LEVEL: 'warn',
    };
    const run = async (entry: string) => {
      const p = startProcess(entry, env);
      const { code } = await p.exited;
      if (code !== 0) throw new Error(`${entry} exited with ${code}:\n${p.output()}`);
      return p.output();
    };
    return { setup: await run('scripts/setup.ts'), migrate: await run('scripts/migrate.ts') };
  } finally {
    for (const c of clusters) c.close();
    try {
      rabbitmqctl('delete_vhost', vhost);
    } catch {
      /* never made */
    }
  }
}

describe('PostgreSQL as the deployments start it', () => {
  it('docker-compose.yml: setup and migrate succeed against servers with exactly its settings, without a restart', async () => {
    const { setup, migrate } = await setupAndMigrate(composePostgresSettings());
    expect(setup).not.toMatch(/restart/i);
    expect(migrate).toMatch(/order \(orders\): \d+ applied/);
  });

  it('k8s/base StatefulSets: setup and migrate succeed against servers with exactly their args, without a restart', async () => {
    const { setup, migrate } = await setupAndMigrate(k8sPostgresSettings());
    expect(setup).not.toMatch(/restart/i);
    expect(migrate).toMatch(/order \(orders\): \d+ applied/);
  });

  it('a server whose command line gives too few slots: setup exits 1 naming the setting, the value needed and where to set it', async () => {
    const c = await createServers(['postgres-low'], asServerOptions(['wal_level=logical', 'max_replication_slots=5']));
    try {
      const p = startProcess('scripts/setup.ts', {
        PG_ADMIN_URL: c.servers[0]!.url(),
        RABBITMQ_URL: RABBIT.toString(),
      });
      expect((await p.exited).code).toBe(1);
      const out = p.output();
      expect(out).toMatch(/max_replication_slots is 5, needs at least 20/);
      expect(out).toMatch(/-c max_replication_slots=20/);
      expect(out).toMatch(/docker-compose\.yml.*StatefulSets' args.*parameter group/);
    } finally {
      c.close();
    }
  });
});
