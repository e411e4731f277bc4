import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  ensureRolesAndDatabases,
  layoutOf,
  loadAdminConfig,
  migrateAll,
  SERVICES,
  urlForDatabase,
  type AdminConfig,
  type ServiceName,
} from '../../scripts/lib/admin';

export const ADMIN_URL = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RABBIT = new URL(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672');

/** Run `sql` as the administrator on a connection of its own, in `database` (the server's default one unless given). */
export async function adminSql(sql: string, database = ADMIN_URL): Promise<void> {
  const c = new pg.Client({ connectionString: database });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/**
 * A fresh, isolated world for one test file: three databases migrated with the real migrations and the real
 * least-privilege roles, a RabbitMQ vhost of its own, and names for slots that nothing else uses.
 */
export type TestEnv = {
  id: string;
  admin: AdminConfig;
  databases: Record<ServiceName, string>;
  /** Superuser URL of a service database, for the test's own reads and writes. */
  adminUrl: (s: ServiceName) => string;
  /** URL with the service's own role, as the service connects. */
  serviceUrl: (s: ServiceName) => string;
  relayUrl: (s: ServiceName) => string;
  /** The saga monitor's database, with its own role. */
  monitorUrl: () => string;
  vhost: string;
  rabbitUrl: string;
  exchange: string;
  slotPrefix: string;
  /** Environment for the relay and services of this test env. */
  env: Record<string, string>;
  close: () => Promise<void>;
};

export function rabbitmqctl(...args: string[]): string {
  return execFileSync('rabbitmqctl', ['-q', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Where a test env makes its vhost: the machine's broker by default, or a cluster the test started. */
export type TestBroker = {
  addVhost: (vhost: string) => Promise<void> | void;
  deleteVhost: (vhost: string) => Promise<void> | void;
  /** RABBITMQ_URL for the vhost (one URL, or a cluster's node URLs separated by commas). */
  url: (vhost: string) => string;
};

const machineBroker: TestBroker = {
  addVhost(vhost) {
    rabbitmqctl('add_vhost', vhost);
    rabbitmqctl('set_permissions', '-p', vhost, RABBIT.username || 'guest', '.*', '.*', '.*');
  },
  deleteVhost(vhost) {
    rabbitmqctl('delete_vhost', vhost);
  },
  url(vhost) {
    const rabbit = new URL(RABBIT.toString());
    rabbit.pathname = `/${encodeURIComponent(vhost)}`;
    return rabbit.toString();
  },
};

/**
 * `servers`: a superuser URL per service whose database lives on a server of its own (as docker-compose and k8s
 * deploy them); the others, and the monitor's, are on the machine's server (PG_ADMIN_URL).
 */
export async function createTestEnv(
  label: string,
  broker: TestBroker = machineBroker,
  servers: Partial<Record<ServiceName, string>> = {},
): Promise<TestEnv> {
  const id = `t${label.replace(/[^a-z0-9]/g, '').slice(0, 12)}_${randomBytes(3).toString('hex')}`;
  const admin = loadAdminConfig({
    PG_ADMIN_URL: ADMIN_URL,
    ...Object.fromEntries(Object.entries(servers).map(([s, url]) => [`${s.toUpperCase()}_PG_ADMIN_URL`, url])),
    ORDER_DB_NAME: `${id}_orders`,
    INVENTORY_DB_NAME: `${id}_inventory`,
    PAYMENT_DB_NAME: `${id}_payment`,
    MONITOR_DB_NAME: `${id}_monitor`,
  });
  const { servers: serverOf } = layoutOf(admin);
  const quiet = () => undefined;
  await ensureRolesAndDatabases(admin, quiet);
  await migrateAll(admin, quiet);
  const vhost = id;
  await broker.addVhost(vhost);
  const rabbitUrl = broker.url(vhost);
  const databases = { order: admin.ORDER_DB_NAME, inventory: admin.INVENTORY_DB_NAME, payment: admin.PAYMENT_DB_NAME };
  const roleUrl = (role: string, s: ServiceName) => {
    const u = new URL(urlForDatabase(serverOf[s], databases[s]));
    u.username = role;
    u.password = '';
    return u.toString();
  };
  const serviceUrl = (s: ServiceName) => roleUrl(`${s}_svc`, s);
  const monitorUrl = () => {
    const u = new URL(urlForDatabase(ADMIN_URL, admin.MONITOR_DB_NAME));
    u.username = 'monitor_svc';
    return u.toString();
  };
  const relayUrl = (s: ServiceName) => roleUrl('relay', s);
  const exchange = 'saga.events';
  const slotPrefix = `${id}_slot`;
  const env: Record<string, string> = {
    RABBITMQ_URL: rabbitUrl,
    EVENTS_EXCHANGE: exchange,
    RELAY_SOURCES: SERVICES.map((s) => `${s}=${relayUrl(s)}`).join(','),
    RELAY_SLOT_PREFIX: slotPrefix,
    RELAY_PORT: '0',
    ORDER_DATABASE_URL: serviceUrl('order'),
    INVENTORY_DATABASE_URL: serviceUrl('inventory'),
    PAYMENT_DATABASE_URL: serviceUrl('payment'),
    MONITOR_DATABASE_URL: monitorUrl(),
    LOG_LEVEL: 'info',
  };
  return {
    id,
    admin,
    databases,
    adminUrl: (s) => urlForDatabase(serverOf[s], databases[s]),
    serviceUrl,
    relayUrl,
    monitorUrl,
    vhost,
    rabbitUrl,
    exchange,
    slotPrefix,
    env,
    async close() {
      // Every server is tried, and the vhost removed, even when one of them fails; the first failure is raised after.
      const failures: unknown[] = [];
      for (const server of new Set([ADMIN_URL, ...Object.values(serverOf)]))
        await dropEnvFrom(server, id, Object.values(databases)).catch((err: unknown) => failures.push(err));
      try {
        await broker.deleteVhost(vhost);
      } catch {
        /* already gone */
      }
      if (failures.length > 0) throw failures[0];
    },
  };
}

/** Terminate whatever still holds a slot or a database of env `id` on one server, then drop both. */
async function dropEnvFrom(server: string, id: string, databases: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    await client.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name LIKE $1 AND active_pid IS NOT NULL`,
      [`${id}%`],
    );
    for (let i = 0; i < 50; i++) {
      const { rows } = await client.query<{ slot_name: string; active: boolean }>(
        'SELECT slot_name, active FROM pg_replication_slots WHERE slot_name LIKE $1',
        [`${id}%`],
      );
      if (rows.length === 0) break;
      for (const r of rows) {
        if (!r.active) await client.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]).catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const { rows: extra } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datname LIKE $1',
      [`${id}\\_%`],
    );
    for (const db of new Set([...databases, ...extra.map((r) => r.datname)]))
      await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
