import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import type { TestEnv } from './env';
import { recorded } from './openapi-conformance';
import { startProcess, type Running } from './process';
import { waitUntil } from './wait';

export type ServiceProc = { proc: Running; port: number; url: string; adminUrl: string };

/** The admin listener of each service started here, by its public URL (product and account set-up goes there). */
const adminUrls = new Map<string, string>();
export function adminUrlOf(publicUrl: string): string {
  const admin = adminUrls.get(new URL(publicUrl).origin);
  if (!admin) throw new Error(`no admin listener known for ${publicUrl}`);
  return admin;
}
export type Stack = {
  relay: Running;
  services: Record<ServiceName, ServiceProc>;
  restart: (s: ServiceName | 'relay', signal?: NodeJS.Signals) => Promise<void>;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
};

export function serviceEnv(env: TestEnv, s: ServiceName, extra: Record<string, string> = {}): Record<string, string> {
  return {
    RABBITMQ_URL: env.rabbitUrl,
    EVENTS_EXCHANGE: env.exchange,
    DATABASE_URL: env.serviceUrl(s),
    PORT: '0',
    ADMIN_PORT: '0',
    CONSUMER_RETRY_BASE_MS: '100',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/**
 * Run components from the production bundle (dist/saga.js, `npm run build`) instead of their TypeScript sources;
 * `file` lets the benchmark run another bundle (an older commit's, for before/after figures).
 */
export const bundled = { use: false, file: 'dist/saga.js' };
/** Extra node flags per component (the profiler: `--cpu-prof`, which NODE_OPTIONS may not carry). */
export const nodeFlags: { of: (component: string) => string[] } = { of: () => [] };
const entryOf = (component: string, source: string): [string, string[]] =>
  bundled.use ? [bundled.file, [component]] : [source, []];

export async function startService(
  env: TestEnv,
  s: ServiceName,
  extra: Record<string, string> = {},
): Promise<ServiceProc> {
  return startDeployable(s, serviceEnv(env, s, extra));
}

/** The saga monitor, on its own database. */
export async function startMonitor(env: TestEnv, extra: Record<string, string> = {}): Promise<ServiceProc> {
  return startDeployable('monitor', { ...serviceEnv(env, 'order'), DATABASE_URL: env.monitorUrl(), ...extra });
}

async function startDeployable(name: string, vars: Record<string, string>): Promise<ServiceProc> {
  const [entry, args] = entryOf(name, `services/${name}/src/main.ts`);
  const proc = startProcess(entry, vars, args, nodeFlags.of(name));
  const started = await proc
    .waitForLog((l) => l.msg === 'service started' || l.level === 'fatal', 60_000)
    .catch((err) => {
      throw new Error(`${name} did not start: ${String(err)}\n${proc.output().slice(-2000)}`);
    });
  if (started.level === 'fatal') throw new Error(`${name} failed to start: ${proc.output().slice(-2000)}`);
  const port = Number(started.port);
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${Number(started.adminPort)}`;
  adminUrls.set(url, adminUrl);
  await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, {
    message: `${name} ready`,
    timeoutMs: 30_000,
  });
  return { proc, port, url, adminUrl };
}

export function startRelayProc(env: TestEnv, extra: Record<string, string> = {}): Running {
  const [entry, args] = entryOf('relay', 'cdc-relay/src/main.ts');
  return startProcess(
    entry,
    { ...env.env, RELAY_RETRY_BASE_MS: '50', RELAY_RETRY_MAX_MS: '1000', RELAY_STANDBY_POLL_MS: '200', ...extra },
    args,
    nodeFlags.of('relay'),
  );
}

export async function waitRelayStreaming(relay: Running): Promise<void> {
  await waitUntil(() => SERVICES.every((s) => relay.logs.some((l) => l.msg === 'streaming' && l.source === s)), {
    timeoutMs: 30_000,
    message: 'relay streaming',
  });
}

/** The relay and the three services as separate processes, as in production. */
export async function startStack(
  env: TestEnv,
  extra: Partial<Record<ServiceName | 'relay', Record<string, string>>> = {},
): Promise<Stack> {
  let relay = startRelayProc(env, extra.relay);
  await waitRelayStreaming(relay);
  const entries = await Promise.all(SERVICES.map(async (s) => [s, await startService(env, s, extra[s])] as const));
  const services = Object.fromEntries(entries) as Record<ServiceName, ServiceProc>;
  return {
    get relay() {
      return relay;
    },
    services,
    async restart(which, signal = 'SIGKILL') {
      if (which === 'relay') {
        await relay.kill(signal);
        relay = startRelayProc(env, extra.relay);
        await waitRelayStreaming(relay);
      } else {
        await services[which].proc.kill(signal);
        services[which] = await startService(env, which, extra[which]);
      }
    },
    async stop(signal = 'SIGTERM') {
      await Promise.all([relay.kill(signal), ...SERVICES.map((s) => services[s].proc.kill(signal))]);
    },
  } as Stack;
}

/** JSON over HTTP with the status, for tests and the demo; recorded for the OpenAPI conformance check. */
export async function http<T = unknown>(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  // Only under jest: the benchmark drives thousands of orders through here and must not keep them.
  if (process.env.JEST_WORKER_ID !== undefined)
    recorded.push({
      method,
      url,
      status: res.status,
      contentType: res.headers.get('content-type') ?? '',
      body: parsed,
    });
  return { status: res.status, body: parsed as T };
}
