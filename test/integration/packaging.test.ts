/**
 * docker-compose.yml, k8s/ and the Dockerfile are product we cannot run here (no container engine, no cluster):
 * validated offline against their schemas and against the code, and shown to fail on a real mistake.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import { createOpsRouter } from '@saga/common/runtime/ops';
import { DATABASE_OWNERS, SERVICES } from '@saga/common/contracts/service-names';
import { COMPONENTS } from '../../scripts/cli';
import {
  checkK8sConsistency,
  copiesOfStage,
  hasKubectl,
  interpolate,
  KUBERNETES_VERSION,
  loadCompose,
  renderKustomize,
  SUPPORTED_NODE_LTS,
  validateCompose,
  validateDockerfile,
  validateK8sSchemas,
  type K8sObject,
} from '../support/packaging';
import { ROOT } from '../support/process';

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const servedPaths: string[] = [];

beforeAll(async () => {
  // The probe paths the ops router really serves (not 404), asked of the router itself.
  const app = express();
  app.use(createOpsRouter(async () => ({ ok: true })));
  const server = app.listen(0);
  const port = (server.address() as { port: number }).port;
  for (const p of ['/healthz', '/readyz', '/metrics', '/nope']) {
    if ((await fetch(`http://127.0.0.1:${port}${p}`)).status !== 404) servedPaths.push(p);
  }
  server.close();
  expect(servedPaths).toEqual(['/healthz', '/readyz']);
});

describe('docker-compose.yml', () => {
  const doc = loadCompose();
  it('is valid against the Compose Specification and consistent with the code', () => {
    expect(validateCompose(doc)).toEqual([]);
    const services = doc.services as Record<
      string,
      { depends_on?: Record<string, { condition: string }>; command?: string[] }
    >;
    expect(Object.keys(services).sort()).toEqual([
      'grafana',
      'inventory',
      'jaeger',
      'migrate',
      'monitor',
      'order',
      'payment',
      'postgres-inventory',
      'postgres-monitor',
      'postgres-order',
      'postgres-payment',
      'prometheus',
      'rabbitmq',
      'relay',
      'seed',
      'setup',
    ]);
    // The demo's catalogue comes after the services are healthy, as npm start adds it.
    expect(services.seed!.depends_on).toEqual({
      order: { condition: 'service_healthy' },
      inventory: { condition: 'service_healthy' },
      payment: { condition: 'service_healthy' },
    });
    expect(services.migrate!.depends_on).toEqual({ setup: { condition: 'service_completed_successfully' } });
    // Tracing: every long-running component takes the OTLP endpoint (empty: off), and Jaeger receives it in the profile.
    const envOf = (name: string) =>
      (doc.services as Record<string, { environment?: Record<string, string>; profiles?: string[] }>)[name]!;
    for (const c of ['relay', 'order', 'inventory', 'payment', 'monitor'])
      expect(envOf(c).environment).toHaveProperty('OTEL_EXPORTER_OTLP_ENDPOINT');
    // Prometheus, Jaeger and Grafana only with --profile observability; everything else by default.
    expect(Object.keys(services).filter((s) => (services[s] as { profiles?: string[] }).profiles)).toEqual([
      'prometheus',
      'jaeger',
      'grafana',
    ]);
    for (const s of ['prometheus', 'jaeger', 'grafana'])
      expect((services[s] as { profiles?: string[] }).profiles).toEqual(['observability']);
    for (const s of ['order', 'inventory', 'payment', 'monitor', 'relay']) {
      expect(services[s]!.depends_on).toEqual({
        rabbitmq: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
    }
  });
  it('runs every service PostgreSQL with wal_level=logical, a server per database owner that setup and migrate are given', () => {
    const services = doc.services as Record<
      string,
      { command: string[]; environment: Record<string, string>; depends_on: Record<string, unknown> }
    >;
    for (const s of SERVICES) expect(services[`postgres-${s}`]!.command.join(' ')).toContain('wal_level=logical');
    for (const s of DATABASE_OWNERS) {
      expect(services.setup!.depends_on).toHaveProperty(`postgres-${s}`);
      for (const job of ['setup', 'migrate'])
        expect(services[job]!.environment[`${s.toUpperCase()}_PG_ADMIN_URL`]).toContain(`@postgres-${s}:5432/`);
      // The owner connects with the password setup gave its role, to its own server.
      const password = `\${${s.toUpperCase()}_DB_PASSWORD:-${s}-dev-password}`;
      expect(services.setup!.environment[`${s.toUpperCase()}_DB_PASSWORD`]).toBe(password);
      expect(services[s]!.environment.DATABASE_URL).toContain(`${password}@postgres-${s}:5432/`);
    }
  });
  it('fails on a misspelt key, an undefined dependency, a wrong port, an unknown variable or command', () => {
    const bad = (mutate: (d: any) => void) => {
      const d = clone(doc);
      mutate(d);
      return validateCompose(d);
    };
    expect(bad((d) => (d.services.order.depends_onn = d.services.order.depends_on)).join()).toContain('depends_onn');
    expect(bad((d) => (d.services.order.depends_on.postgress = { condition: 'service_healthy' })).join()).toContain(
      'undefined service postgress',
    );
    expect(bad((d) => (d.services.order.environment.PORT = '9000')).join()).toContain(
      'PORT=9000 is not among its ports',
    );
    expect(bad((d) => (d.services.payment.environment.PAYMENT_LIMIT = '5')).join()).toContain(
      'PAYMENT_LIMIT is not read by payment',
    );
    expect(bad((d) => delete d.services.relay.environment.RELAY_SOURCES).join()).toContain(
      'RELAY_SOURCES must be set for relay',
    );
    expect(bad((d) => (d.services.relay.command = ['rellay'])).join()).toContain('not a component of the image');
    expect(bad((d) => (d.services.order.healthcheck.test = ['CMD', 'true'])).join()).toContain(
      'healthcheck does not probe port 8000',
    );
    expect(
      bad(
        (d) => (d.services.relay.healthcheck.test = ['CMD', 'node', '-e', "fetch('http://127.0.0.1:8010/healthz')"]),
      ).join(),
    ).toContain('relay: healthcheck does not call /readyz');
    expect(
      bad((d) => (d.services.payment.ports = ['127.0.0.1:8002:8002', '${BIND_ADDRESS:-127.0.0.1}:8102:8102'])).join(),
    ).toContain('compose payment: the operator-only port 8102 is not published on 127.0.0.1 only');
    expect(bad((d) => (d.services.monitor.ports = ['8000:8000'])).join()).toContain(
      'compose monitor: PORT=8003 is not among its ports',
    );
    expect(bad((d) => delete d.services.migrate.environment.MONITOR_PG_ADMIN_URL).join()).toContain(
      'MONITOR_PG_ADMIN_URL must be set for migrate',
    );
  });
});

const itWithKubectl = hasKubectl() ? it : it.skip;

describe(`k8s (kustomize), strictly against Kubernetes ${KUBERNETES_VERSION}`, () => {
  let objects: K8sObject[] = [];
  beforeAll(() => {
    if (hasKubectl()) objects = renderKustomize(path.join(ROOT, 'k8s/overlays/dev'));
  });

  itWithKubectl('renders the dev overlay into valid objects, no unknown field anywhere', () => {
    const kinds = objects.map((o) => o.kind);
    for (const k of [
      'Deployment',
      'StatefulSet',
      'Service',
      'Job',
      'ConfigMap',
      'Secret',
      'PodDisruptionBudget',
      'NetworkPolicy',
      'Namespace',
    ])
      expect(kinds).toContain(k);
    expect(validateK8sSchemas(objects)).toEqual([]);
  });

  itWithKubectl(
    'is consistent with the code: recommended labels on every object, components, variables, ports, probes, security, network',
    () => {
      expect(checkK8sConsistency(objects, servedPaths)).toEqual([]);
      const deployments = objects
        .filter((o) => o.kind === 'Deployment')
        .map((o) => o.metadata.name)
        .sort();
      expect(deployments).toEqual(['inventory', 'monitor', 'order', 'payment', 'relay']);
      const relay = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'relay')!;
      expect(relay.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
      const pg = objects.filter((o) => o.kind === 'StatefulSet' && o.metadata.name.startsWith('postgres-'));
      expect(pg.map((s) => s.metadata.name).sort()).toEqual(DATABASE_OWNERS.map((s) => `postgres-${s}`).sort());
      for (const s of SERVICES)
        expect(JSON.stringify(pg.find((p) => p.metadata.name === `postgres-${s}`))).toContain('wal_level=logical');
    },
  );

  itWithKubectl(
    'fails on a misspelt field, a wrong type, a wrong port, a bad probe path, an unknown variable or an admin port open to anyone',
    () => {
      const mutated = (mutate: (objs: any[]) => void) => {
        const o = clone(objects);
        mutate(o);
        return o;
      };
      const order = (objs: any[]) =>
        objs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'order').spec.template.spec.containers[0];
      expect(validateK8sSchemas(mutated((o) => (order(o).readinessProbes = order(o).readinessProbe))).join()).toContain(
        'unknown field "readinessProbes"',
      );
      expect(
        validateK8sSchemas(mutated((o) => (o.find((x: any) => x.kind === 'Deployment').spec.replicas = '2'))).join(),
      ).toContain('expected number');
      expect(
        checkK8sConsistency(
          mutated((o) => (order(o).ports[0].containerPort = 9000)),
          servedPaths,
        ).join(),
      ).toContain('containerPort 9000 does not match PORT=8000');
      expect(
        checkK8sConsistency(
          mutated((o) => (order(o).readinessProbe.httpGet.path = '/ready')),
          servedPaths,
        ).join(),
      ).toContain('/ready is not served');
      expect(
        checkK8sConsistency(
          mutated((o) => order(o).env.push({ name: 'DATABSE_URL', value: 'x' })),
          servedPaths,
        ).join(),
      ).toContain('DATABSE_URL is not read by order');
      expect(
        checkK8sConsistency(
          mutated((o) => (order(o).securityContext.readOnlyRootFilesystem = false)),
          servedPaths,
        ).join(),
      ).toContain('read-only root');
      expect(
        checkK8sConsistency(
          mutated((o) => (order(o).args = ['ordr'])),
          servedPaths,
        ).join(),
      ).toContain('not a component');
      expect(
        checkK8sConsistency(
          mutated((o) => delete o.find((x: any) => x.kind === 'Service').metadata.labels['app.kubernetes.io/instance']),
          servedPaths,
        ).join(),
      ).toMatch(/Service\/\S+: missing labels app.kubernetes.io\/instance/);
      const policy = (objs: any[], name: string) =>
        objs.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === name).spec;
      expect(
        checkK8sConsistency(
          mutated(
            (o) =>
              (policy(o, 'monitor').egress[0].to[0].podSelector.matchLabels['app.kubernetes.io/name'] =
                'postgres-order'),
          ),
          servedPaths,
        ).join(),
      ).toContain('NetworkPolicy/monitor: egress to postgres-order, rabbitmq');
      expect(
        checkK8sConsistency(
          mutated((o) =>
            policy(o, 'postgres-monitor').ingress[0].from.push({
              podSelector: { matchLabels: { 'app.kubernetes.io/name': 'relay' } },
            }),
          ),
          servedPaths,
        ).join(),
      ).toContain('NetworkPolicy/postgres-monitor: ingress from monitor, relay, saga-migrate');
      expect(
        checkK8sConsistency(
          mutated((o) =>
            o.splice(
              o.findIndex((x: any) => x.kind === 'Service' && x.metadata.name === 'monitor-admin'),
              1,
            ),
          ),
          servedPaths,
        ).join(),
      ).toContain('Service/monitor-admin: missing');
      expect(
        checkK8sConsistency(
          mutated((o) => delete policy(o, 'order').ingress.find((r: any) => r.ports[0].port === 8100).from),
          servedPaths,
        ).join(),
      ).toContain('NetworkPolicy/order: admits anyone to the operator-only port 8100');
      expect(
        checkK8sConsistency(
          mutated((o) => delete policy(o, 'relay').ingress[0].from),
          servedPaths,
        ).join(),
      ).toContain('NetworkPolicy/relay: admits anyone to the operator-only port 8010');
      expect(
        checkK8sConsistency(
          mutated(
            (o) =>
              delete o.find((x: any) => x.kind === 'Secret' && x.metadata.name.startsWith('saga-admin')).data
                .MONITOR_PG_ADMIN_URL,
          ),
          servedPaths,
        ).join(),
      ).toContain('MONITOR_PG_ADMIN_URL must be set for setup');
    },
  );
});

describe('Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  it('is multi-stage on a supported Node LTS slim with a pinned minor named by a build ARG, OCI-labelled, non-root, copying only what exists and is not ignored, with no npm in the run stage', () => {
    expect(validateDockerfile(text)).toEqual([]);
  });
  it('fails when the final stage runs as root, a COPY source is missing, the base is not slim, not a supported LTS or not pinned, or a label is missing', () => {
    expect(validateDockerfile(text.replace('USER node', 'USER root')).join()).toContain('non-root USER');
    expect(validateDockerfile(text.replace('COPY scripts scripts', 'COPY scriptz scripts')).join()).toContain(
      'COPY scriptz does not exist',
    );
    expect(validateDockerfile(text.replace('COPY services/monitor/src services/monitor/src\n', '')).join()).toContain(
      'stage build does not COPY services/monitor/src',
    );
    expect(
      validateDockerfile(text.replaceAll('COPY services/monitor/package.json services/monitor/\n', '')).join(),
    ).toContain('stage deps does not COPY services/monitor/package.json');
    const base = /^ARG NODE_IMAGE=node:[\d.]+-bookworm-slim$/m;
    expect(text).toMatch(base);
    expect(validateDockerfile(text.replace(base, 'ARG NODE_IMAGE=node:24.11')).join()).toContain(
      'not an official Node slim',
    );
    expect(validateDockerfile(text.replace(base, 'ARG NODE_IMAGE=node:20.19-bookworm-slim')).join()).toContain(
      'not a supported Node LTS',
    );
    expect(validateDockerfile(text.replace(base, 'ARG NODE_IMAGE=node:24-bookworm-slim')).join()).toContain(
      'does not pin a minor',
    );
    // A digest pinned through the ARG is accepted.
    expect(
      validateDockerfile(text.replace(base, `ARG NODE_IMAGE=node:24.11-bookworm-slim@sha256:${'0'.repeat(64)}`)),
    ).toEqual([]);
    expect(
      validateDockerfile(text.replace('org.opencontainers.image.version=', 'org.opencontainers.image.versio=')).join(),
    ).toContain('lacks the OCI label org.opencontainers.image.version');
    for (const lts of SUPPORTED_NODE_LTS)
      expect(validateDockerfile(text.replace(base, `ARG NODE_IMAGE=node:${lts}.1-bookworm-slim`))).toEqual([]);
  });

  it('fails when a stage names its base image instead of the build ARG, the production install runs install scripts, or the run stage has npm', () => {
    expect(
      validateDockerfile(text.replace('FROM ${NODE_IMAGE} AS run', 'FROM node:24.11-bookworm-slim AS run')).join(),
    ).toContain('stage run names its base node:24.11-bookworm-slim instead of a build ARG');
    expect(validateDockerfile(text.replace(' --ignore-scripts', '')).join()).toContain(
      'the production install runs install scripts',
    );
    expect(validateDockerfile(text.replace(' /usr/local/bin/npm ', ' ')).join()).toContain(
      'the run stage keeps npm (/usr/local/bin/npm is not removed)',
    );
    expect(validateDockerfile(text.replace('USER node', 'RUN npm ls\nUSER node')).join()).toContain(
      'the run stage runs npm',
    );
  });

  it('its steps work without a container engine: a production install runs every component of the bundle', () => {
    // The build stage's work: bundle. The deps stage's: its COPYs, then a production-only install; the run stage's COPYs.
    execFileSync('npm', ['run', 'build', '-s'], { cwd: ROOT, stdio: 'pipe' });
    const dir = mkdtempSync(path.join(tmpdir(), 'image-'));
    try {
      for (const src of [...copiesOfStage(text, 'deps'), ...copiesOfStage(text, 'run')]) {
        mkdirSync(path.dirname(path.join(dir, src)), { recursive: true });
        cpSync(path.join(ROOT, src), path.join(dir, src), { recursive: true });
      }
      cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
      const install = ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'];
      expect(text).toContain(`npm ${install.join(' ')}`);
      execFileSync('npm', [...install, '--prefer-offline', '--loglevel=error'], {
        cwd: dir,
        stdio: 'pipe',
        timeout: 300_000,
      });
      const run = (args: string[], env: Record<string, string> = {}) =>
        execFileSync(process.execPath, ['dist/saga.js', ...args], {
          cwd: dir,
          encoding: 'utf8',
          env: { PATH: process.env.PATH!, ...env },
        });
      expect(run(['--help'])).toContain('relay');
      // Every package the bundle requires resolves in the production install.
      const bundle = readFileSync(path.join(dir, 'dist/saga.js'), 'utf8');
      const requires = [...new Set([...bundle.matchAll(/require\("([^"./][^"]*)"\)/g)].map((m) => m[1]!))].filter(
        (r) => !r.startsWith('node:'),
      );
      expect(requires).toEqual(
        expect.arrayContaining([
          'amqplib',
          'pg',
          'pg-logical-replication',
          'express',
          'drizzle-orm/node-postgres',
          'zod',
        ]),
      );
      const missing = requires.filter((r) => {
        try {
          execFileSync(process.execPath, ['-e', `require.resolve(${JSON.stringify(r)})`], { cwd: dir, stdio: 'pipe' });
          return false;
        } catch {
          return true;
        }
      });
      expect(missing).toEqual([]);
      // Each component accepts the configuration docker-compose gives it.
      const services = loadCompose().services as Record<
        string,
        { command?: string[]; environment?: Record<string, string> }
      >;
      const checked: string[] = [];
      for (const svc of Object.values(services)) {
        const component = svc.command?.[0];
        if (!component || !(component in COMPONENTS)) continue;
        const env = Object.fromEntries(
          Object.entries(svc.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]),
        );
        expect(run(['check-config', component], env)).toContain(`${component}: configuration ok`);
        checked.push(component);
      }
      expect(checked.sort()).toEqual(['inventory', 'migrate', 'monitor', 'order', 'payment', 'relay', 'seed', 'setup']);
      expect(run(['order', '--help'])).toContain('usage: saga order');
      expect(() => run(['check-config', 'relay'], { RELAY_SOURCES: 'nonsense' })).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
