/**
 * The project's docker-compose.yml on a real Docker Engine: which CLIs to use, the images it needs (pulled, or
 * stand-ins built from Debian's packages where no registry answers), the app image (BuildKit, with npm's CA as a
 * build secret), and a project of its own on free host ports. Every command runs with a deadline.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { baseImagesOf } from '../support/packaging';
import { freePort } from '../support/pg-cluster';
import { ROOT } from '../support/process';

export const APP_IMAGE = 'saga-outbox-cdc:local';

/** Run a command with a deadline; its stdout, or an error with what it printed. */
export function sh(
  cmd: string[],
  opts: { timeoutMs?: number; env?: Record<string, string>; allowFailure?: boolean } = {},
): { code: number; out: string; err: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const code = r.status ?? -1;
  if (r.error || (code !== 0 && !opts.allowFailure)) {
    const why = r.error ? String(r.error) : `exit ${code}`;
    throw new Error(`${cmd.join(' ')}: ${why}\n${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim());
  }
  return { code, out: r.stdout ?? '', err: r.stderr ?? '' };
}

const works = (cmd: string[], env: Record<string, string> = {}) =>
  spawnSync(cmd[0]!, cmd.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore', timeout: 20_000 }).status === 0;

/** Compose v2 (`docker compose`) where present, else docker-compose (1.29). */
export function composeCommand(): string[] {
  if (works(['docker', 'compose', 'version'])) return ['docker', 'compose'];
  if (works(['docker-compose', 'version'])) return ['docker-compose'];
  throw new Error('no Docker Compose: neither "docker compose" nor docker-compose works (bash test/compose/engine.sh)');
}

/**
 * A docker CLI that builds with BuildKit (needed for the build secret): one with the buildx plugin, or a 20.10-22.x
 * client where DOCKER_BUILDKIT=1 selects the BuildKit built into the client (Debian's /usr/bin/docker). A newer
 * client without buildx cannot.
 */
export function buildCommand(): { cmd: string; env: Record<string, string> } {
  for (const cmd of ['docker', '/usr/bin/docker']) {
    if (works([cmd, 'buildx', 'version'])) return { cmd, env: {} };
    const r = spawnSync(cmd, ['version', '--format', '{{.Client.Version}}'], { encoding: 'utf8', timeout: 20_000 });
    const major = Number(/^(\d+)\./.exec(r.stdout ?? '')?.[1]);
    if (major >= 18 && major < 23) return { cmd, env: { DOCKER_BUILDKIT: '1' } };
  }
  throw new Error(
    'no docker CLI that builds with BuildKit: install the buildx plugin, or Debian docker.io (20.10) whose client has it',
  );
}

type ComposeService = { image?: string; profiles?: string[] };

/** The services `up` starts without a profile, by name. */
export function defaultServices(): Record<string, ComposeService> {
  const doc = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  return Object.fromEntries(Object.entries(doc.services).filter(([, s]) => !s.profiles));
}

/** The images docker-compose.yml (default profile) and the Dockerfile name, other than the app's own. */
export function baseImages(): string[] {
  const fromCompose = Object.values(defaultServices())
    .filter((s) => s.image && s.image !== APP_IMAGE)
    .map((s) => s.image!);
  // The build ARGs' defaults put in: the image a plain `docker build` uses.
  const fromDockerfile = baseImagesOf(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).map((b) => b.image);
  return [...new Set([...fromDockerfile, ...fromCompose])];
}

/** The npm CA bundle to hand the build as a secret, if npm has one set. */
export function npmCafile(): string | undefined {
  const r = spawnSync('npm', ['config', 'get', 'cafile'], { encoding: 'utf8', timeout: 20_000 });
  const f = (r.stdout ?? '').trim();
  return f && f !== 'null' && f !== 'undefined' ? f : undefined;
}

const PORT_NAMES = [
  'ORDER',
  'INVENTORY',
  'PAYMENT',
  'MONITOR',
  'ORDER_ADMIN',
  'INVENTORY_ADMIN',
  'PAYMENT_ADMIN',
  'MONITOR_ADMIN',
  'RELAY',
  'RABBITMQ',
  'RABBITMQ_MANAGEMENT',
] as const;
export type Ports = Record<(typeof PORT_NAMES)[number], number>;

export type Stack = {
  project: string;
  ports: Ports;
  env: Record<string, string>;
  compose: (args: string[], timeoutMs?: number) => ReturnType<typeof sh>;
  /** Container id and inspect document of each container of the project, by service. */
  containers: () => Map<string, Inspect>;
  psql: (service: string, database: string, sql: string) => string;
};

export type Inspect = {
  Id: string;
  Name: string;
  State: { Status: string; ExitCode: number; Health?: { Status: string } };
  Config: { Labels: Record<string, string> };
};

export async function defineStack(): Promise<Stack> {
  const project = `sagacompose${randomBytes(3).toString('hex')}`;
  const ports = {} as Ports;
  for (const k of PORT_NAMES) ports[k] = await freePort();
  const env: Record<string, string> = {
    COMPOSE_PROJECT_NAME: project,
    BIND_ADDRESS: '127.0.0.1',
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [`${k}_HOST_PORT`, String(v)])),
  };
  const compose = composeCommand();
  const run = (args: string[], timeoutMs = 120_000) =>
    sh([...compose, '-p', project, '-f', path.join(ROOT, 'docker-compose.yml'), ...args], { env, timeoutMs });
  const containers = () => {
    const ids = sh(['docker', 'ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])
      .out.split('\n')
      .filter(Boolean);
    if (ids.length === 0) return new Map<string, Inspect>();
    const docs = JSON.parse(sh(['docker', 'inspect', ...ids]).out) as Inspect[];
    return new Map(docs.map((d) => [d.Config.Labels['com.docker.compose.service']!, d]));
  };
  return {
    project,
    ports,
    env,
    compose: run,
    containers,
    psql(service, database, sql) {
      const c = containers().get(service);
      if (!c) throw new Error(`no container for ${service}`);
      return sh(['docker', 'exec', c.Id, 'psql', '-U', 'postgres', '-d', database, '-AtX', '-c', sql]).out.trim();
    },
  };
}
