/**
 * What this project needs of the machine, checked the same way by `npm run doctor` and by the test suite's global
 * setup. Imports nothing of the workspace (jest loads global setup without the module mapper).
 */
import { execFileSync } from 'node:child_process';
import amqp from 'amqplib';
import pg from 'pg';

export type Check = { name: string; ok: boolean; detail: string; fix?: string };

/** Node versions that run the project: 20.19+ (end of life, still works), 22.12+ and 24+ (LTS). Mirrors `engines`. */
export function nodeSupported(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 24;
}

export function checkNode(version = process.versions.node): Check {
  return nodeSupported(version)
    ? { name: 'node', ok: true, detail: `Node ${version}` }
    : {
        name: 'node',
        ok: false,
        detail: `Node ${version} is not supported`,
        fix: 'install Node 22 or 24 LTS (20.19+ also works)',
      };
}

const redact = (url: string) => url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');

/** Reachable, version 14 or later, superuser (setup creates roles and runs ALTER SYSTEM), wal_level=logical. */
export async function checkPostgres(adminUrl: string, opts: { walLevelRequired?: boolean } = {}): Promise<Check[]> {
  const where = redact(adminUrl);
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (err) {
    return [
      {
        name: `postgres ${where}`,
        ok: false,
        detail: `not reachable: ${(err as Error).message}`,
        fix: 'start PostgreSQL (Debian: pg_ctlcluster 15 main start) or point PG_ADMIN_URL at a running server with a passwordless or given superuser',
      },
    ];
  }
  try {
    const { rows } = await client.query<{ v: string; super: boolean; wal: string; slots: string; used: string }>(
      `SELECT current_setting('server_version_num') AS v, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,
              current_setting('wal_level') AS wal, current_setting('max_replication_slots') AS slots,
              (SELECT count(*) FROM pg_replication_slots)::text AS used`,
    );
    const r = rows[0]!;
    const version = Number(r.v);
    const checks: Check[] = [
      version >= 140000
        ? { name: `postgres ${where}`, ok: true, detail: `PostgreSQL ${Math.floor(version / 10000)} reachable` }
        : {
            name: `postgres ${where}`,
            ok: false,
            detail: `PostgreSQL ${r.v} is too old`,
            fix: 'use PostgreSQL 14 or later (pgoutput logical replication)',
          },
      r.super
        ? { name: 'postgres privileges', ok: true, detail: 'connected as a superuser' }
        : {
            name: 'postgres privileges',
            ok: false,
            detail: 'PG_ADMIN_URL is not a superuser',
            fix: 'setup creates roles and databases and runs ALTER SYSTEM: give it a superuser URL in PG_ADMIN_URL',
          },
    ];
    if (r.wal === 'logical')
      checks.push({ name: 'wal_level', ok: true, detail: `logical; replication slots ${r.used} of ${r.slots} in use` });
    else if (opts.walLevelRequired !== false) {
      checks.push({
        name: 'wal_level',
        ok: false,
        detail: `wal_level is ${r.wal}, the relay needs logical`,
        fix: 'npm run setup (ALTER SYSTEM, then restarts a local Debian cluster; elsewhere set PG_RESTART_COMMAND or restart PostgreSQL yourself)',
      });
    }
    return checks;
  } finally {
    await client.end();
  }
}

/**
 * Reachable with these credentials; 3.8 or later (quorum queues). With several addresses (the nodes of a cluster,
 * comma-separated as in RABBITMQ_URL) every node is checked: the components fail over between them, so one node
 * down is a warning for the operator, not a stop, but it is named.
 */
export async function checkRabbitmq(url: string): Promise<Check> {
  const addresses = url
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const where = addresses.map(redact).join(', ');
  const down: string[] = [];
  let version: string | undefined;
  for (const address of addresses) {
    let conn: amqp.ChannelModel | undefined;
    try {
      conn = await amqp.connect(address, { timeout: 3000 });
      version ??= String(conn.connection.serverProperties.version ?? '?');
    } catch (err) {
      down.push(`${redact(address)}: ${(err as Error).message}`);
    } finally {
      await conn?.close().catch(() => undefined);
    }
  }
  if (version === undefined) {
    return {
      name: `rabbitmq ${where}`,
      ok: false,
      detail: `not reachable: ${down.join('; ')}`,
      fix: 'start RabbitMQ (rabbitmq-server -detached) or set RABBITMQ_URL (user:password@host:port)',
    };
  }
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 8))
    return {
      name: `rabbitmq ${where}`,
      ok: false,
      detail: `RabbitMQ ${version} is too old`,
      fix: 'use RabbitMQ 3.8 or later (quorum queues)',
    };
  return {
    name: `rabbitmq ${where}`,
    ok: true,
    detail: `RabbitMQ ${version} reachable${down.length ? `; not reachable: ${down.join('; ')}` : ''}`,
  };
}

/** rabbitmqctl on PATH and allowed to talk to the node (reads the Erlang cookie: root or the rabbitmq user). */
export function checkRabbitmqctl(why: string): Check {
  try {
    execFileSync('rabbitmqctl', ['-q', 'list_vhosts', '--no-table-headers'], { stdio: 'pipe', timeout: 30_000 });
    return { name: 'rabbitmqctl', ok: true, detail: 'on PATH and talks to the broker' };
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      name: 'rabbitmqctl',
      ok: false,
      detail: missing
        ? 'not on PATH'
        : `fails: ${
            String((err as { stderr?: unknown }).stderr ?? (err as Error).message)
              .trim()
              .split('\n')[0]
          }`,
      fix: `${why}: install the RabbitMQ server package (its CLI) and run as root or the rabbitmq user${missing ? '' : ' (the Erlang cookie must be readable)'}`,
    };
  }
}

/** One line per check; what to fix under each failure. */
export function formatChecks(checks: Check[]): string {
  return checks
    .map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}${c.ok || !c.fix ? '' : `\n        fix: ${c.fix}`}`)
    .join('\n');
}
