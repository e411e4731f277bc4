import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { z } from 'zod';
import { BaseEnv, parseEnv } from '@saga/common/runtime/config';
import { BrokerUsersEnv } from './broker-users';
import {
  DATABASE_OWNERS,
  SERVICES,
  isServiceName,
  type DatabaseOwner,
  type ServiceName,
} from '@saga/common/contracts/service-names';

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

/** wal_level=logical on every server that holds a service database. */
export async function ensureLogicalReplication(c: AdminConfig, say: (m: string) => void): Promise<void> {
  const servers = layoutOf(c).servers;
  // Only where an outbox is streamed from: the monitor's database needs no logical decoding.
  for (const server of new Set(SERVICES.map((s) => servers[s]))) await ensureLogicalReplicationOn(c, server, say);
}

/** wal_level=logical and enough slots/senders; restarts the server only when a setting actually changed. */
async function ensureLogicalReplicationOn(c: AdminConfig, adminUrl: string, say: (m: string) => void): Promise<void> {
  const wanted: Record<string, (v: string) => boolean> = {
    wal_level: (v) => v === 'logical',
    max_replication_slots: (v) => Number(v) >= 20,
    max_wal_senders: (v) => Number(v) >= 20,
  };
  const target: Record<string, string> = { wal_level: 'logical', max_replication_slots: '20', max_wal_senders: '20' };
  const changed = await withClient(adminUrl, async (client) => {
    const out: string[] = [];
    for (const [name, ok] of Object.entries(wanted)) {
      const { rows } = await client.query<{ setting: string; pending_restart: boolean }>(
        'SELECT setting, pending_restart FROM pg_settings WHERE name = $1',
        [name],
      );
      if (!ok(rows[0]!.setting)) {
        await client.query(`ALTER SYSTEM SET ${name} = ${lit(target[name]!)}`);
        out.push(`${name}: ${rows[0]!.setting} -> ${target[name]}`);
      }
    }
    return out;
  });
  if (changed.length === 0) {
    say('postgres: wal_level=logical already');
    return;
  }
  say(`postgres: set ${changed.join(', ')} (ALTER SYSTEM); a restart is needed`);
  const dataDir = await withClient(
    adminUrl,
    async (client) =>
      (await client.query<{ d: string }>('SELECT current_setting($1) AS d', ['data_directory'])).rows[0]!.d,
  );
  const restart = restartCommand(c, adminUrl, dataDir);
  if (!restart) {
    throw new Error(
      `PostgreSQL must be restarted for ${changed.join(', ')} to take effect, and setup cannot do it here. ` +
        `Restart the server (e.g. "pg_ctl restart -D ${dataDir}" or your platform's restart), or set PG_RESTART_COMMAND, then run "npm run setup" again.`,
    );
  }
  say(`postgres: restarting with: ${restart.join(' ')}`);
  execFileSync(restart[0]!, restart.slice(1), { stdio: 'inherit' });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const level = await withClient(
        adminUrl,
        async (client) => (await client.query<{ w: string }>("SELECT current_setting('wal_level') AS w")).rows[0]!.w,
      );
      if (level !== 'logical') throw new Error(`wal_level is still ${level} after the restart`);
      say('postgres: restarted, wal_level=logical');
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
      if (isServiceName(s)) await pool.query(`GRANT SELECT ON outbox TO ${q(layout.relayRole)}`);
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
