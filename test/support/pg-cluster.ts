/**
 * Throwaway PostgreSQL clusters, each on its own port and data directory under a temporary directory, never touching
 * the machine's own server: for failover tests a primary and a physical standby of it (pg_basebackup + streaming
 * replication); for the benchmark one server per service, as docker-compose and k8s deploy them. As root, the server binaries run as the `postgres` user (initdb and postgres refuse root).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { waitUntil } from './wait';

/** The server binaries: PG_BIN_DIR, else those of the machine's Debian cluster version. */
export function pgBinDir(): string {
  if (process.env.PG_BIN_DIR) return process.env.PG_BIN_DIR;
  const versions = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
    : [];
  const dir = versions.map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => existsSync(path.join(d, 'initdb')));
  if (!dir) throw new Error('no PostgreSQL server binaries found: install postgresql (Debian) or set PG_BIN_DIR');
  return dir;
}

/**
 * Ports this process has handed out. A probe's port is free again once it is closed, and the kernel may offer it to
 * the very next probe: two servers of one test (or one compose project) were given the same port and collided.
 */
const handedOut = new Set<number>();

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released), never one handed out before here. */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

const asRoot = process.getuid?.() === 0;
function run(bin: string, args: string[]): string {
  const file = path.join(pgBinDir(), bin);
  return asRoot
    ? execFileSync('runuser', ['-u', 'postgres', '--', file, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every directory this module makes starts with this; a run that was killed leaves them to the next one. */
const DIR_PREFIX = 'saga-pgpair-';

/**
 * Stop and remove the clusters an interrupted earlier run left behind (a killed test cannot stop its servers; they
 * would keep their ports, memory and temporary directories). Only directories this module made, and not recent ones.
 */
export function removeLeftoverClusters(): void {
  const tmp = os.tmpdir();
  for (const entry of readdirSync(tmp)) {
    if (!entry.startsWith(DIR_PREFIX)) continue;
    const base = path.join(tmp, entry);
    // A cluster younger than this may belong to a test running right now in another process.
    if (Date.now() - statSync(base).mtimeMs < 15 * 60_000) continue;
    for (const name of readdirSync(base)) {
      const dataDir = path.join(base, name);
      if (!existsSync(path.join(dataDir, 'postmaster.pid'))) continue;
      try {
        run('pg_ctl', ['stop', '-w', '-D', dataDir, '-m', 'immediate']);
      } catch {
        /* not running any more */
      }
    }
    rmSync(base, { recursive: true, force: true });
  }
}

export type PgServer = {
  name: string;
  port: number;
  dataDir: string;
  /** Superuser URL of `database` on this server. */
  url: (database?: string) => string;
  start: () => Promise<void>;
  /** `immediate` is a crash (no shutdown checkpoint, nothing more sent to the standby); `fast` a clean stop. */
  stop: (mode?: 'fast' | 'immediate') => void;
  promote: () => Promise<void>;
};

/** A temporary directory for servers, owned by the user the server binaries run as. */
function serversDir(): string {
  const base = mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  if (asRoot)
    chownSync(
      base,
      Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
      Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
    );
  return base;
}

/** One server under `base` (its data directory `base/name`, not yet created), listening on 127.0.0.1:`port` and a socket in `base`. */
function pgServer(base: string, name: string, port: number, settings: string[]): PgServer {
  const dataDir = path.join(base, name);
  const s: PgServer = {
    name,
    port,
    dataDir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      const opts = [
        `-c port=${port}`,
        "-c listen_addresses='127.0.0.1'",
        `-c unix_socket_directories='${base}'`,
        ...settings,
      ].join(' ');
      run('pg_ctl', ['start', '-w', '-t', '60', '-D', dataDir, '-l', path.join(base, `${name}.log`), '-o', opts]);
      await waitUntil(
        async () => {
          const c = new pg.Client({ connectionString: s.url() });
          c.on('error', () => undefined);
          await c.connect();
          await c.end();
          return true;
        },
        { timeoutMs: 30_000, message: `${name} accepting connections` },
      );
    },
    stop(mode = 'fast') {
      if (existsSync(path.join(dataDir, 'postmaster.pid'))) run('pg_ctl', ['stop', '-w', '-D', dataDir, '-m', mode]);
    },
    async promote() {
      run('pg_ctl', ['promote', '-w', '-D', dataDir]);
      await waitUntil(
        async () => {
          const c = new pg.Client({ connectionString: s.url() });
          c.on('error', () => undefined);
          await c.connect();
          const { rows } = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
          await c.end();
          return rows[0]?.r === false;
        },
        { timeoutMs: 30_000, message: `${name} promoted` },
      );
    },
  };
  return s;
}

/** Stop every server (as a crash: nothing of theirs is kept) and remove their directory. */
function removeServers(base: string, servers: PgServer[]): void {
  for (const s of servers) {
    try {
      s.stop('immediate');
    } catch {
      /* already stopped */
    }
  }
  rmSync(base, { recursive: true, force: true });
}

/**
 * Settings of a running server given in its configuration files (`pg_settings.source`), as `-c` options for another
 * server: a server started with them behaves as the machine's own does (fsync, memory, WAL sizes, autovacuum). Left
 * out: what names that server or reaches beyond it (port, addresses, directories and files, cluster name, archiving,
 * replication peers, logging), and values with a quote (pg_ctl hands `-o` to a shell). The logical-decoding settings
 * the relay needs are set after the copied ones, so they hold whatever the machine's server has.
 */
export async function settingsOf(adminUrl: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rows } = await c.query<{ name: string; value: string }>(
      `SELECT name, current_setting(name) AS value FROM pg_settings WHERE source = 'configuration file'
         AND name NOT IN ('port', 'listen_addresses', 'unix_socket_directories', 'cluster_name', 'external_pid_file', 'data_directory',
                          'hba_file', 'ident_file', 'config_file', 'synchronous_standby_names', 'archive_mode', 'archive_command',
                          'restore_command', 'primary_conninfo', 'primary_slot_name', 'stats_temp_directory', 'huge_pages')
         AND name NOT LIKE 'ssl%' AND name NOT LIKE 'log%'`,
    );
    // current_setting gives each value with its unit (shared_buffers 128MB), as a configuration file would.
    const copied = rows.filter((r) => !r.value.includes("'")).map((r) => `-c ${r.name}='${r.value}'`);
    return [...copied, '-c wal_level=logical', '-c max_wal_senders=10', '-c max_replication_slots=10'];
  } finally {
    await c.end();
  }
}

export type PgServers = { servers: PgServer[]; close: () => void };

/** `names.length` independent servers, each on its own port and data directory, started with `settings` (`-c name=value`). */
export async function createServers(names: string[], settings: string[]): Promise<PgServers> {
  const base = serversDir();
  const servers: PgServer[] = [];
  try {
    for (const name of names) {
      const s = pgServer(base, name, await freePort(), settings);
      servers.push(s);
      run('initdb', ['-D', s.dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    }
    await Promise.all(servers.map((s) => s.start()));
  } catch (err) {
    removeServers(base, servers);
    throw err;
  }
  return { servers, close: () => removeServers(base, servers) };
}

export type PgPair = { primary: PgServer; standby: PgServer; close: () => void };

/**
 * A primary with wal_level=logical and a synchronous physical standby: a commit returns only once the standby has
 * flushed it, so a crash of the primary loses no transaction a client was told about (the configuration a
 * zero-loss failover needs; with asynchronous replication the last commits before a crash may be lost outright).
 */
export async function createPrimaryAndStandby(): Promise<PgPair> {
  const base = serversDir();
  // Speed over crash safety of the host (fsync off): the test crashes PostgreSQL, never the machine.
  const common = [
    '-c wal_level=logical',
    '-c max_wal_senders=10',
    '-c max_replication_slots=10',
    '-c fsync=off',
    "-c wal_keep_size='256MB'",
    '-c max_connections=100',
  ];
  const primary = pgServer(base, 'primary', await freePort(), [...common, "-c synchronous_standby_names='standby1'"]);
  const standby = pgServer(base, 'standby', await freePort(), [...common, '-c hot_standby=on']);
  const servers = [primary, standby];
  try {
    run('initdb', ['-D', primary.dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync']);
    await primary.start();
    run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      standby.dataDir,
      '-R',
      '-X',
      'stream',
      '--no-sync',
    ]);
    // The standby's name on the primary (synchronous_standby_names); a later primary_conninfo line wins.
    appendFileSync(
      path.join(standby.dataDir, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=standby1'\n`,
    );
    await standby.start();
    await waitUntil(
      async () => {
        const c = new pg.Client({ connectionString: primary.url() });
        await c.connect();
        const { rows } = await c.query<{ sync_state: string }>(
          "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'",
        );
        await c.end();
        return rows[0]?.sync_state === 'sync';
      },
      { timeoutMs: 30_000, message: 'standby streaming synchronously' },
    );
  } catch (err) {
    removeServers(base, servers);
    throw err;
  }
  return { primary, standby, close: () => removeServers(base, servers) };
}

/**
 * A TCP forwarder standing for the address clients use (a virtual IP, a DNS name, HAProxy in front of Patroni):
 * `retarget` sends new connections to another server and cuts the open ones, as a failover does.
 */
export async function startTcpProxy(
  target: number,
): Promise<{ port: number; retarget: (port: number) => void; close: () => Promise<void> }> {
  let to = target;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(to, '127.0.0.1');
    open.add(client).add(upstream);
    const cut = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    retarget(port) {
      to = port;
      for (const s of open) s.destroy();
      open.clear();
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
