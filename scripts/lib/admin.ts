import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { z } from 'zod';
import { BaseEnv, parseEnv } from '@saga/common/runtime/config';
import { redactUrl } from '@saga/common/runtime/logger';
import { BrokerUsersEnv } from './broker-users';
import {
  DATABASE_OWNERS,
  SERVICES,
  isServiceName,
  type DatabaseOwner,
  type ServiceName,
} from '@saga/common/contracts/service-names';
import { markerDdl } from '../../cdc-relay/src/slot-marker';

/**
 * Operations tooling, not library code: roles, ALTER SYSTEM, server restarts, grants. Only setup, migrate, the
 * benchmarks and the tests load it; no service does.
 * Each service's database and role, and the relay's role: what `setup` and `migrate` manage.
 */
export { DATABASE_OWNERS, SERVICES, type DatabaseOwner, type ServiceName };

/** `order` is a reserved word in SQL: its database is `orders`; every other service's is its name. */
const defaultDatabase = (s: DatabaseOwner) => (s === 'order' ? 'orders' : s);
const envName = <S extends string>(service: DatabaseOwner, suffix: S) =>
  `${service.toUpperCase() as Uppercase<DatabaseOwner>}_${suffix}` as const;

/** One variable per database owner (the services and the monitor), `<NAME>_<suffix>`. */
function perService<S extends string, T extends z.ZodType>(suffix: S, make: (s: DatabaseOwner) => T) {
  return Object.fromEntries(DATABASE_OWNERS.map((s) => [envName(s, suffix), make(s)])) as {
    [K in DatabaseOwner as `${Uppercase<K>}_${S}`]: T;
  };
}

const ident = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier');
export const AdminEnv = BaseEnv.extend({
  PG_ADMIN_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/postgres'),
  /** Per service (<NAME>_PG_ADMIN_URL), when each database lives on a server of its own (as in docker-compose and k8s). */
  ...perService('PG_ADMIN_URL', () => z.string().url().optional()),
  ...perService('DB_NAME', (s) => ident.default(defaultDatabase(s))),
  ...perService('DB_USER', (s) => ident.default(`${s}_svc`)),
  RELAY_DB_USER: ident.default('relay'),
  ...perService('DB_PASSWORD', () => z.string().min(1).optional()),
  RELAY_DB_PASSWORD: z.string().min(1).optional(),
  /** Command that restarts PostgreSQL when wal_level must change; by default pg_ctlcluster for a local Debian cluster. */
  PG_RESTART_COMMAND: z.string().min(1).optional(),
  MIGRATIONS_DIR: z.string().min(1).default(path.resolve(process.cwd(), 'migrations')),
  /**
   * statement_timeout of every service role (ALTER ROLE ... SET): the server ends a statement that runs longer, so a
   * stuck lock or a runaway plan cannot hold a connection for ever. Shorter than the services' DB_QUERY_TIMEOUT_MS.
   * A PostgreSQL duration ('15s', '500ms', '2min'); '0' turns it off.
   */
  DB_STATEMENT_TIMEOUT: z
    .string()
    .regex(/^\d+\s*(ms|s|min)?$/, "a PostgreSQL duration such as '15s'")
    .default('15s'),
  /**
   * idle_in_transaction_session_timeout of every service role: a transaction whose client went silent (a half-open
   * link mid-transaction) releases its locks after this, instead of blocking the retry of its own batch.
   */
  DB_IDLE_IN_TRANSACTION_TIMEOUT: z
    .string()
    .regex(/^\d+\s*(ms|s|min)?$/, "a PostgreSQL duration such as '60s'")
    .default('60s'),
  /** Length bound of the saga monitor's queue (setup's policy, drop-head): what the monitor's absence may cost. */
  MONITOR_QUEUE_MAX_LENGTH: z.coerce.number().int().min(1000).default(100_000),
  /** The broker's management API (http://user:password@host:15672): how setup applies queue policies when set; rabbitmqctl otherwise. */
  RABBITMQ_MANAGEMENT_URL: z.string().url().optional(),
  /** One broker user per component when their passwords are set (broker-users.ts); the vhost is RABBITMQ_URL's. */
  ...BrokerUsersEnv,
});
export type AdminConfig = z.infer<typeof AdminEnv>;
export const loadAdminConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(AdminEnv, env);

export type Layout = {
  /** Superuser URL of the server that holds each service's database. */
  servers: Record<DatabaseOwner, string>;
  databases: Record<DatabaseOwner, string>;
  roles: Record<DatabaseOwner, string>;
  relayRole: string;
  passwords: Partial<Record<DatabaseOwner | 'relay', string>>;
};

export function layoutOf(c: AdminConfig): Layout {
  const each = <T>(f: (s: DatabaseOwner) => T) =>
    Object.fromEntries(DATABASE_OWNERS.map((s) => [s, f(s)])) as Record<DatabaseOwner, T>;
  return {
    servers: each((s) => c[envName(s, 'PG_ADMIN_URL')] ?? c.PG_ADMIN_URL),
    databases: each((s) => c[envName(s, 'DB_NAME')]),
    roles: each((s) => c[envName(s, 'DB_USER')]),
    relayRole: c.RELAY_DB_USER,
    passwords: { ...each((s) => c[envName(s, 'DB_PASSWORD')]), relay: c.RELAY_DB_PASSWORD },
  };
}

/** `url` with its database replaced. */
export function urlForDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const q = pg.escapeIdentifier;
const lit = pg.escapeLiteral;

/**
 * Replication capacity of a server that `databases` service databases are streamed from, counted per use:
 * - the relay: one logical slot per database, and its walsender;
 * - a relay that restarts (or a second replica waiting for the slot) connects while the old walsender has not yet
 *   noticed its peer is gone (up to wal_sender_timeout, 60 s): one more walsender per database, no slot;
 * - two physical standbys (a failover pair, or a standby and a replica being rebuilt): a slot and a walsender each;
 * - pg_basebackup building a standby: a temporary slot and a walsender;
 * - a reconcile (`relay reconcile`) reads the outbox table and needs only the relay's slot, counted above;
 * - a margin of 4 of each for an operator's inspection slot (pg_recvlogical, a Debezium trial) and mistakes.
 * One database (docker-compose, k8s): 8 slots, 9 walsenders.
 */
export function replicationCapacity(databases: number): { max_replication_slots: number; max_wal_senders: number } {
  const standbys = 2;
  const baseBackup = 1;
  const margin = 4;
  return {
    max_replication_slots: databases + standbys + baseBackup + margin,
    max_wal_senders: 2 * databases + standbys + baseBackup + margin,
  };
}

/**
 * Every database on one server is the development layout (npm start, the integration tests): there every test file
 * makes its own databases and slots, and a killed run's slots stay until the next run's global setup removes them.
 */
export const SHARED_SERVER_MINIMUM = 20;

/** wal_level=logical and the replication capacity on every server that holds a service database. */
export async function ensureLogicalReplication(c: AdminConfig, say: (m: string) => void): Promise<void> {
  const servers = layoutOf(c).servers;
  const shared = new Set(Object.values(servers)).size === 1;
  // Only where an outbox is streamed from: the monitor's database needs no logical decoding.
  for (const server of new Set(SERVICES.map((s) => servers[s]))) {
    const databases = SERVICES.filter((s) => servers[s] === server).length;
    const need = replicationCapacity(databases);
    if (shared) {
      need.max_replication_slots = Math.max(need.max_replication_slots, SHARED_SERVER_MINIMUM);
      need.max_wal_senders = Math.max(need.max_wal_senders, SHARED_SERVER_MINIMUM);
    }
    await ensureLogicalReplicationOn(c, server, need, say);
  }
}

/** Where a server's command-line settings are set, for an error that must say it. */
export const WHERE_TO_SET =
  "the server's command line: docker-compose.yml (the postgres services' command), k8s/base/postgres.yaml (the StatefulSets' args), or a managed service's parameter group";

type Shortfall = { name: string; setting: string; source: string; target: string };

async function shortfalls(adminUrl: string, need: Record<string, number>): Promise<Shortfall[]> {
  return withClient(adminUrl, async (client) => {
    const { rows } = await client.query<{ name: string; setting: string; source: string }>(
      "SELECT name, setting, source FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders')",
    );
    const out: Shortfall[] = [];
    for (const r of rows) {
      if (r.name === 'wal_level') {
        if (r.setting !== 'logical') out.push({ ...r, target: 'logical' });
      } else if (Number(r.setting) < need[r.name]!) out.push({ ...r, target: String(need[r.name]) });
    }
    return out;
  });
}

const describeShortfall = (f: Shortfall) =>
  `${f.name} is ${f.setting}, needs ${f.target === 'logical' ? '' : 'at least '}${f.target}`;

/**
 * wal_level=logical and enough slots/senders; restarts the server only when a setting actually changed. A setting
 * given on the server's command line (`-c`, as in containers) beats ALTER SYSTEM, and a server in another container
 * cannot be restarted from here: both end in an error that says what to set, to what, and where.
 */
async function ensureLogicalReplicationOn(
  c: AdminConfig,
  adminUrl: string,
  need: { max_replication_slots: number; max_wal_senders: number },
  say: (m: string) => void,
): Promise<void> {
  const where = redactUrl(adminUrl);
  const missing = await shortfalls(adminUrl, need);
  if (missing.length === 0) {
    say(
      `postgres ${where}: wal_level=logical, max_replication_slots >= ${need.max_replication_slots}, max_wal_senders >= ${need.max_wal_senders} already`,
    );
    return;
  }
  const onCommandLine = missing.filter((f) => f.source === 'command line');
  if (onCommandLine.length) {
    throw new Error(
      `PostgreSQL at ${where}: ${missing.map(describeShortfall).join('; ')}. ` +
        `${onCommandLine.map((f) => f.name).join(', ')} ${onCommandLine.length > 1 ? 'are' : 'is'} set on the server's command line, which ALTER SYSTEM cannot override: ` +
        `start the server with ${missing.map((f) => `-c ${f.name}=${f.target}`).join(' ')} (in ${WHERE_TO_SET}), then run setup again.`,
    );
  }
  await withClient(adminUrl, async (client) => {
    for (const f of missing) await client.query(`ALTER SYSTEM SET ${f.name} = ${lit(f.target)}`);
  });
  const changed = missing.map((f) => `${f.name}: ${f.setting} -> ${f.target}`);
  say(`postgres ${where}: set ${changed.join(', ')} (ALTER SYSTEM); a restart is needed`);
  const dataDir = await withClient(
    adminUrl,
    async (client) =>
      (await client.query<{ d: string }>('SELECT current_setting($1) AS d', ['data_directory'])).rows[0]!.d,
  );
  const restart = restartCommand(c, adminUrl, dataDir);
  if (!restart) {
    throw new Error(
      `PostgreSQL at ${where}: ${missing.map(describeShortfall).join('; ')}. Setup wrote ${missing.map((f) => `${f.name}=${f.target}`).join(', ')} with ALTER SYSTEM, ` +
        `which takes effect only after a restart, and setup cannot restart this server. Restart it (e.g. "pg_ctl restart -D ${dataDir}" or your platform's restart) ` +
        `or set PG_RESTART_COMMAND; where it runs in a container or as a managed service, set ${missing.map((f) => `${f.name}=${f.target}`).join(' ')} in ${WHERE_TO_SET}. Then run "npm run setup" again.`,
    );
  }
  say(`postgres ${where}: restarting with: ${restart.join(' ')}`);
  execFileSync(restart[0]!, restart.slice(1), { stdio: 'inherit' });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const still = await shortfalls(adminUrl, need);
      if (still.length) throw new Error(`after the restart: ${still.map(describeShortfall).join('; ')}`);
      say(`postgres ${where}: restarted, ${changed.join(', ')}`);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function restartCommand(c: AdminConfig, adminUrl: string, dataDir: string): string[] | undefined {
  if (c.PG_RESTART_COMMAND) return ['sh', '-c', c.PG_RESTART_COMMAND];
  const host = new URL(adminUrl).hostname;
  const local = ['127.0.0.1', 'localhost', '::1', '[::1]', ''].includes(host);
  // Debian layout: /var/lib/postgresql/<version>/<cluster>
  const m = /\/postgresql\/([^/]+)\/([^/]+)\/?$/.exec(dataDir);
  if (local && m && existsSync('/usr/bin/pg_ctlcluster'))
    return ['pg_ctlcluster', '--skip-systemctl-redirect', m[1]!, m[2]!, 'restart'];
  return undefined;
}

/** Roles and databases, least privilege: each service role can connect to its own database only. */
export async function ensureRolesAndDatabases(c: AdminConfig, say: (m: string) => void): Promise<void> {
  const layout = layoutOf(c);
  const ensureRole = async (
    client: pg.Client,
    role: string,
    replication: boolean,
    password: string | undefined,
    where: string,
  ) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (!rowCount) {
      await client.query(
        `CREATE ROLE ${q(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE ${replication ? 'REPLICATION' : 'NOREPLICATION'}`,
      );
      say(`postgres${where}: created role ${role}${replication ? ' (REPLICATION)' : ''}`);
    }
    if (password) await client.query(`ALTER ROLE ${q(role)} PASSWORD ${lit(password)}`);
  };
  const shared = new Set(Object.values(layout.servers)).size === 1;
  for (const s of DATABASE_OWNERS) {
    const where = shared ? '' : ` (${s})`;
    const db = layout.databases[s];
    // The relay reads the services' outboxes; the monitor publishes nothing, so its database is the monitor's alone.
    const readers = isServiceName(s) ? [q(layout.roles[s]), q(layout.relayRole)] : [q(layout.roles[s])];
    await withClient(layout.servers[s], async (client) => {
      await ensureRole(client, layout.roles[s], false, layout.passwords[s], where);
      await client.query(`ALTER ROLE ${q(layout.roles[s])} SET statement_timeout = ${lit(c.DB_STATEMENT_TIMEOUT)}`);
      await client.query(
        `ALTER ROLE ${q(layout.roles[s])} SET idle_in_transaction_session_timeout = ${lit(c.DB_IDLE_IN_TRANSACTION_TIMEOUT)}`,
      );
      if (isServiceName(s)) await ensureRole(client, layout.relayRole, true, layout.passwords.relay, where);
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (!rowCount) {
        await client.query(`CREATE DATABASE ${q(db)}`);
        say(`postgres${where}: created database ${db}`);
      }
      await client.query(`REVOKE ALL ON DATABASE ${q(db)} FROM PUBLIC`);
      await client.query(`GRANT CONNECT ON DATABASE ${q(db)} TO ${readers.join(', ')}`);
    });
    await withClient(urlForDatabase(layout.servers[s], db), async (client) => {
      await client.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
      await client.query(`GRANT USAGE ON SCHEMA public TO ${readers.join(', ')}`);
    });
  }
  say('postgres: roles and databases in place');
}

/** Apply every database owner's migrations (drizzle's migrator; idempotent) and grant its role what it needs, no more. */
export async function migrateAll(c: AdminConfig, say: (m: string) => void): Promise<void> {
  const layout = layoutOf(c);
  for (const s of DATABASE_OWNERS) {
    const url = urlForDatabase(layout.servers[s], layout.databases[s]);
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      const before = await countMigrations(pool, s);
      await migrate(drizzle(pool), {
        migrationsFolder: path.join(c.MIGRATIONS_DIR, s),
        migrationsTable: `__drizzle_migrations_${s}`,
        migrationsSchema: 'drizzle',
      });
      const after = await countMigrations(pool, s);
      const role = q(layout.roles[s]);
      await pool.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
      await pool.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
      if (isServiceName(s)) {
        await pool.query(`GRANT SELECT ON outbox TO ${q(layout.relayRole)}`);
        // The relay's slot marker: the relay role reads and updates it (see cdc-relay/src/slot-marker.ts).
        for (const statement of markerDdl(layout.relayRole)) await pool.query(statement);
      }
      say(`migrate: ${s} (${layout.databases[s]}): ${after - before} applied, ${after} in all`);
    } finally {
      await pool.end();
    }
  }
}

async function countMigrations(pool: pg.Pool, s: DatabaseOwner): Promise<number> {
  const table = `drizzle.__drizzle_migrations_${s}`;
  const { rows } = await pool.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [table]);
  if (!rows[0]!.exists) return 0;
  return Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
}
