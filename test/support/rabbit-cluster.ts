/**
 * A RabbitMQ cluster of its own for a test: `size` nodes of the installed RabbitMQ on this machine, each with its own
 * node name, ports (below the ephemeral range, checked free), data, log and config under a temporary directory, joined
 * into one cluster with `rabbitmqctl join_cluster`. The broker already running here (node rabbit@localhost, port
 * 5672) is never addressed: every command names one of these nodes with `-n`.
 *
 * Nodes run as the rabbitmq user when the test runs as root (as the Debian service does), so they share its Erlang
 * cookie with the CLI; `rabbitmqctl` itself switches to that user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { waitUntil } from './wait';

const run = promisify(execFile);

export type ClusterNode = {
  /** Erlang node name, e.g. `saga-c1a2b3-1@localhost`. */
  name: string;
  /** AMQP port. */
  port: number;
  distPort: number;
  dir: string;
};

export type QueueInfo = { name: string; type: string; leader: string; members: string[]; online: string[] };

export type RabbitCluster = {
  nodes: ClusterNode[];
  /** `amqp://guest:guest@127.0.0.1:<port>/<vhost>` of one node. */
  url: (node: ClusterNode, vhost: string) => string;
  /** Every node's URL, comma-separated, starting with `first` (RABBITMQ_URL for a component). */
  urls: (vhost: string, first?: number) => string;
  /** rabbitmqctl against one running node (the first running one by default). */
  ctl: (args: string[], node?: ClusterNode) => Promise<string>;
  queues: (vhost: string) => Promise<QueueInfo[]>;
  nodeOfPort: (port: number) => ClusterNode | undefined;
  /** SIGKILL the node's Erlang VM: a crash, its TCP connections reset at once. */
  kill: (node: ClusterNode) => Promise<void>;
  /** Start a stopped node again with its data: it rejoins the cluster. */
  start: (node: ClusterNode) => Promise<void>;
  running: (node: ClusterNode) => boolean;
  /** Stop every node and delete their directories. */
  close: () => Promise<void>;
};

const asRoot = process.getuid?.() === 0;

/** A TCP port free on 127.0.0.1, below the ephemeral range (a listener in that range can collide with an outgoing socket). */
async function freePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
    });
    if (free) {
      taken.add(port);
      return port;
    }
  }
}

async function rabbitmqctl(node: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', '-n', node, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return stdout;
}

export async function startRabbitCluster(size = 3): Promise<RabbitCluster> {
  const id = `saga-c${randomBytes(3).toString('hex')}`;
  const base = mkdtempSync(path.join(tmpdir(), `${id}-`));
  const taken = new Set<number>();
  const nodes: ClusterNode[] = [];
  for (let i = 1; i <= size; i++) {
    const dir = path.join(base, `n${i}`);
    const node: ClusterNode = {
      name: `${id}-${i}@localhost`,
      port: await freePort(taken),
      distPort: await freePort(taken),
      dir,
    };
    mkdirSync(dir, { recursive: true });
    // pause_minority: a node cut off from the majority stops serving instead of diverging (RabbitMQ's advice for 3+ nodes).
    writeFileSync(
      path.join(dir, 'rabbitmq.conf'),
      [`listeners.tcp.1 = 127.0.0.1:${node.port}`, 'cluster_partition_handling = pause_minority', ''].join('\n'),
    );
    writeFileSync(path.join(dir, 'enabled_plugins'), '[].\n');
    // Its own env file: the machine's (/etc/rabbitmq/rabbitmq-env.conf) names the main node.
    writeFileSync(path.join(dir, 'rabbitmq-env.conf'), '');
    nodes.push(node);
  }
  if (asRoot) {
    const { uid, gid } = userIds('rabbitmq');
    for (const p of [
      base,
      ...nodes.flatMap((n) => [
        n.dir,
        ...['rabbitmq.conf', 'enabled_plugins', 'rabbitmq-env.conf'].map((f) => path.join(n.dir, f)),
      ]),
    ])
      chownSync(p, uid, gid);
  }

  const env = (n: ClusterNode): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: asRoot ? '/var/lib/rabbitmq' : (process.env.HOME ?? '/tmp'),
    RABBITMQ_CONF_ENV_FILE: path.join(n.dir, 'rabbitmq-env.conf'),
    RABBITMQ_NODENAME: n.name,
    RABBITMQ_DIST_PORT: String(n.distPort),
    RABBITMQ_CONFIG_FILE: path.join(n.dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(n.dir, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: path.join(n.dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(n.dir, 'log'),
    RABBITMQ_PID_FILE: path.join(n.dir, 'pid'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  });
  const pidOf = (n: ClusterNode): number | undefined => {
    try {
      return Number(readFileSync(path.join(n.dir, 'pid'), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  const alive = (pid: number | undefined) => {
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const start = async (n: ClusterNode) => {
    rmSync(path.join(n.dir, 'pid'), { force: true });
    const server = '/usr/lib/rabbitmq/bin/rabbitmq-server';
    const [cmd, args] = asRoot
      ? [
          'runuser',
          ['-u', 'rabbitmq', '--', 'env', ...Object.entries(env(n)).map(([k, v]) => `${k}=${v}`), server, '-detached'],
        ]
      : [server, ['-detached']];
    execFileSync(cmd, args as string[], {
      env: asRoot ? { PATH: env(n).PATH } : { ...process.env, ...env(n) },
      stdio: 'ignore',
    });
    // `wait` follows the pid file, then the node's boot, to the end (or fails when the process dies).
    await waitUntil(() => pidOf(n), { timeoutMs: 30_000, message: `${n.name} pid file` });
    await rabbitmqctl(n.name, ['wait', path.join(n.dir, 'pid'), '--timeout', '90']).catch((err: unknown) => {
      throw new Error(`${n.name} did not start: ${String(err)}\n${tailOfLog(n)}`);
    });
  };
  const stopped = new Set<ClusterNode>();
  const cluster: RabbitCluster = {
    nodes,
    url: (n, vhost) => `amqp://guest:guest@127.0.0.1:${n.port}/${encodeURIComponent(vhost)}`,
    urls: (vhost, first = 0) => nodes.map((_, i) => cluster.url(nodes[(first + i) % nodes.length]!, vhost)).join(','),
    ctl: (args, node) => rabbitmqctl((node ?? nodes.find((n) => !stopped.has(n)) ?? nodes[0]!).name, args),
    async queues(vhost) {
      const out = await cluster.ctl([
        'list_queues',
        '-p',
        vhost,
        'name',
        'type',
        'leader',
        'members',
        'online',
        '--formatter',
        'json',
      ]);
      return (JSON.parse(out) as Record<string, unknown>[]).map((q) => ({
        name: String(q.name),
        type: String(q.type),
        leader: String(q.leader ?? ''),
        members: (q.members as string[] | undefined) ?? [],
        online: (q.online as string[] | undefined) ?? [],
      }));
    },
    nodeOfPort: (port) => nodes.find((n) => n.port === port),
    async kill(n) {
      const pid = pidOf(n);
      stopped.add(n);
      if (pid && alive(pid)) {
        process.kill(pid, 'SIGKILL');
        await waitUntil(() => !alive(pid), { timeoutMs: 10_000, message: `${n.name} gone` });
      }
    },
    async start(n) {
      await start(n);
      stopped.delete(n);
    },
    running: (n) => !stopped.has(n) && alive(pidOf(n)),
    async close() {
      for (const n of nodes) {
        const pid = pidOf(n);
        if (alive(pid)) {
          await rabbitmqctl(n.name, ['stop'], 30_000).catch(() => undefined);
          if (alive(pid)) process.kill(pid!, 'SIGKILL');
        }
      }
      rmSync(base, { recursive: true, force: true });
    },
  };

  // A test process that ends without afterAll (a crash, a forced exit) still takes its nodes down.
  const onExit = () => {
    for (const n of nodes) {
      const pid = pidOf(n);
      if (alive(pid)) process.kill(pid!, 'SIGKILL');
    }
  };
  process.once('exit', onExit);
  const close = cluster.close;
  cluster.close = async () => {
    await close();
    process.removeListener('exit', onExit);
  };

  try {
    // Every node boots in parallel; then they join the first one at a time (stop_app, join_cluster, start_app).
    // Joins into one node at once race in Mnesia's schema merge: a node's start_app then fails with
    // `{mnesia_app, start}`. A join that fails anyway is retried from a reset node, at most twice more.
    await Promise.all(nodes.map((n) => start(n)));
    for (const n of nodes.slice(1)) {
      for (let attempt = 1; ; attempt++) {
        try {
          await rabbitmqctl(n.name, ['stop_app']);
          if (attempt > 1) await rabbitmqctl(n.name, ['reset']);
          await rabbitmqctl(n.name, ['join_cluster', nodes[0]!.name]);
          await rabbitmqctl(n.name, ['start_app']);
          break;
        } catch (err) {
          if (attempt >= 3) throw new Error(`${n.name} did not join: ${String(err)}\n${tailOfLog(n)}`, { cause: err });
        }
      }
    }
    await waitUntil(
      async () => {
        const status = JSON.parse(await rabbitmqctl(nodes[0]!.name, ['cluster_status', '--formatter', 'json'])) as {
          running_nodes?: string[];
        };
        return nodes.every((n) => status.running_nodes?.includes(n.name));
      },
      { timeoutMs: 60_000, message: 'every node running in the cluster' },
    );
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

function userIds(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no ${user} user: install the rabbitmq-server package`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function tailOfLog(n: ClusterNode): string {
  try {
    const log = readFileSync(path.join(n.dir, 'log', `${n.name}.log`), 'utf8');
    return log
      .split('\n')
      .filter((l) => l.includes('[error]'))
      .slice(0, 5)
      .join('\n');
  } catch {
    return '(no log)';
  }
}
