/**
 * Offline validation of what we ship but cannot run here (no container engine, no cluster): the Compose file
 * against the Compose Specification, rendered k8s manifests against the Kubernetes models, the Dockerfile, and
 * the consistency between them and the code (commands, environment variables, ports, probe paths).
 * Every validator returns a list of errors; an empty list is a pass.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { DockerfileParser } from 'dockerfile-ast';
import YAML from 'yaml';
import type { z } from 'zod';
import { AdminEnv } from '../../scripts/lib/admin';
import { BaseEnv } from '@saga/common/runtime/config';
import { DATABASE_OWNERS, SERVICES, isServiceName } from '@saga/common/contracts/service-names';
import { RelayEnv } from '../../cdc-relay/src/config';
import { SlotEnv } from '../../cdc-relay/src/slots';
import { COMPONENTS, type Component } from '../../scripts/cli';
import { SeedEnv } from '../../scripts/demo-data';
import { InventoryEnv } from '../../services/inventory/src/config';
import { MonitorEnv } from '../../services/monitor/src/config';
import { OrderEnv } from '../../services/order/src/config';
import { PaymentEnv } from '../../services/payment/src/config';
import { ROOT } from './process';

export const IMAGE = 'saga-outbox-cdc';
export const KUBERNETES_VERSION = '1.36 (OpenAPI models of @kubernetes/client-node 2.0.1)';

/** What each component reads from the environment. */
export const SCHEMAS: Record<Component, z.ZodObject> = {
  order: OrderEnv,
  inventory: InventoryEnv,
  payment: PaymentEnv,
  monitor: MonitorEnv,
  relay: RelayEnv,
  setup: AdminEnv,
  migrate: AdminEnv.extend(SlotEnv.shape),
  seed: SeedEnv,
  doctor: AdminEnv,
  dlq: BaseEnv,
};
/** Variables whose defaults only fit a local machine: a deployment must set them (or `<NAME>_FILE`). */
export const MUST_SET: Record<Component, string[][]> = {
  order: [['DATABASE_URL'], ['RABBITMQ_URL'], ['PORT'], ['ADMIN_PORT']],
  inventory: [['DATABASE_URL'], ['RABBITMQ_URL'], ['PORT'], ['ADMIN_PORT']],
  payment: [['DATABASE_URL'], ['RABBITMQ_URL'], ['PORT'], ['ADMIN_PORT']],
  monitor: [['DATABASE_URL'], ['RABBITMQ_URL'], ['PORT'], ['ADMIN_PORT']],
  relay: [['RELAY_SOURCES'], ['RABBITMQ_URL'], ['RELAY_PORT']],
  setup: [['RABBITMQ_URL'], ['PG_ADMIN_URL', 'ORDER_PG_ADMIN_URL']],
  migrate: [['PG_ADMIN_URL', 'ORDER_PG_ADMIN_URL']],
  seed: SERVICES.map((s) => [`${s.toUpperCase()}_URL`]),
  doctor: [],
  dlq: [['RABBITMQ_URL']],
};
export const HTTP_PORT_VAR: Partial<Record<Component, string>> = {
  order: 'PORT',
  inventory: 'PORT',
  payment: 'PORT',
  monitor: 'PORT',
  relay: 'RELAY_PORT',
};
/** The operator-only listener that serves /metrics: a service's admin listener, the relay's only one. */
export const METRICS_PORT_VAR: Partial<Record<Component, string>> = {
  order: 'ADMIN_PORT',
  inventory: 'ADMIN_PORT',
  payment: 'ADMIN_PORT',
  monitor: 'ADMIN_PORT',
  relay: 'RELAY_PORT',
};

export const isComponent = (c: unknown): c is Component =>
  typeof c === 'string' && Object.prototype.hasOwnProperty.call(COMPONENTS, c);

/** Environment consistency for one container: every name known to the component, every must-set name set. */
export function checkEnv(where: string, component: Component, names: string[]): string[] {
  const known = new Set(Object.keys(SCHEMAS[component].shape));
  const errors: string[] = [];
  const set = new Set(names.map((n) => (n.endsWith('_FILE') && known.has(n.slice(0, -5)) ? n.slice(0, -5) : n)));
  // The OpenTelemetry SDK reads the standard OTEL_* variables itself, in every long-running component.
  const tracing = (n: string) => n.startsWith('OTEL_') && HTTP_PORT_VAR[component] !== undefined;
  for (const n of set) if (!known.has(n) && !tracing(n)) errors.push(`${where}: ${n} is not read by ${component}`);
  for (const alternatives of MUST_SET[component]) {
    if (!alternatives.some((a) => set.has(a)))
      errors.push(`${where}: ${alternatives.join(' or ')} must be set for ${component}`);
  }
  // With a server per database owner, one left out would be looked for on PG_ADMIN_URL's default (127.0.0.1).
  if (component === 'setup' || component === 'migrate') {
    const perOwner = DATABASE_OWNERS.map((s) => `${s.toUpperCase()}_PG_ADMIN_URL`);
    if (perOwner.some((n) => set.has(n)))
      for (const n of perOwner)
        if (!set.has(n) && !set.has('PG_ADMIN_URL'))
          errors.push(`${where}: ${n} must be set for ${component} (the others are)`);
  }
  return errors;
}

// ---------------------------------------------------------------- compose

export function loadCompose(file = path.join(ROOT, 'docker-compose.yml')): Record<string, unknown> {
  return YAML.parse(readFileSync(file, 'utf8'), { merge: true });
}

/** `${VAR:-default}` as Compose interpolates it with an empty environment. */
export function interpolate(value: string): string {
  return value.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, _name, def) => def ?? '');
}

export function validateCompose(doc: Record<string, unknown>): string[] {
  const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false });
  addFormats(ajv);
  const schema = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/dclint/schemas/compose.schema.json'), 'utf8'));
  const validate = ajv.compile(schema);
  const errors: string[] = [];
  if (!validate(doc))
    errors.push(
      ...(validate.errors ?? []).map((e) => `compose${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`),
    );
  const services = (doc.services ?? {}) as Record<string, Record<string, unknown>>;
  for (const [name, svc] of Object.entries(services)) {
    const deps = Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys((svc.depends_on as object) ?? {});
    for (const d of deps)
      if (!services[d as string]) errors.push(`compose: ${name} depends on undefined service ${String(d)}`);
    if (svc.image !== `${IMAGE}:local` && svc.build === undefined) continue;
    const command = (svc.command as string[] | undefined)?.[0];
    if (!isComponent(command)) {
      errors.push(`compose: ${name} runs "${String(command)}", not a component of the image`);
      continue;
    }
    const env = (svc.environment ?? {}) as Record<string, string>;
    errors.push(...checkEnv(`compose ${name}`, command, Object.keys(env)));
    const portVar = HTTP_PORT_VAR[command];
    if (portVar) {
      const port = interpolate(String(env[portVar] ?? ''));
      const published = ((svc.ports ?? []) as string[]).map((p) => String(p).split(':').pop());
      if (!published.includes(port))
        errors.push(`compose ${name}: ${portVar}=${port} is not among its ports ${published.join(',')}`);
      const probe = JSON.stringify((svc.healthcheck as { test?: unknown } | undefined)?.test ?? '');
      if (!probe.includes(`127.0.0.1:${port}/`))
        errors.push(`compose ${name}: healthcheck does not probe port ${port}`);
      if (!/\/readyz/.test(probe))
        errors.push(`compose ${name}: healthcheck does not call /readyz (others wait on it: ready, not just alive)`);
    }
    // An operator-only listener (admin, the relay's) is published on the loopback interface only, whatever
    // BIND_ADDRESS says.
    const metricsVar = METRICS_PORT_VAR[command];
    if (metricsVar) {
      const admin = interpolate(String(env[metricsVar] ?? ''));
      const mapping = ((svc.ports ?? []) as string[]).map(String).find((p) => p.split(':').pop() === admin);
      if (!admin || !mapping) errors.push(`compose ${name}: ${metricsVar}=${admin} is not among its ports`);
      else if (!mapping.startsWith('127.0.0.1:'))
        errors.push(`compose ${name}: the operator-only port ${admin} is not published on 127.0.0.1 only (${mapping})`);
    }
  }
  return errors;
}

// ---------------------------------------------------------------- kubernetes

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };

export function hasKubectl(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

export function renderKustomize(dir: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return YAML.parseAllDocuments(out)
    .map((d) => d.toJSON() as K8sObject)
    .filter(Boolean);
}

/** Strict field and type check of every object against the Kubernetes models (unknown field = error). */
export function validateK8sSchemas(objects: K8sObject[]): string[] {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'test/support/k8s-schema.mjs')], {
    input: JSON.stringify(objects),
    encoding: 'utf8',
    cwd: ROOT,
  });
  if (r.status !== 0) return [`k8s schema validator failed: ${r.stderr}`];
  return JSON.parse(r.stdout) as string[];
}

type Container = {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string }[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: object; limits?: object };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
};
type PodSpec = { containers: Container[]; initContainers?: Container[]; securityContext?: { runAsNonRoot?: boolean } };

export function podSpecOf(o: K8sObject): PodSpec | undefined {
  const spec = o.spec as { template?: { spec?: PodSpec } } | undefined;
  return spec?.template?.spec;
}

/** The recommended labels every object carries (kubernetes.io/docs/concepts/overview/working-with-objects/common-labels). */
export const K8S_LABELS = ['name', 'instance', 'version', 'component', 'part-of', 'managed-by'].map(
  (k) => `app.kubernetes.io/${k}`,
);

/** Labels, commands, environment, ports, probes, security and resources of every workload, and who may reach whom. */
export function checkK8sConsistency(objects: K8sObject[], servedPaths: string[]): string[] {
  const errors: string[] = [];
  for (const o of objects) {
    const labels = (o.metadata as { labels?: Record<string, string> }).labels ?? {};
    const missing = K8S_LABELS.filter((k) => !labels[k]);
    if (missing.length) errors.push(`${o.kind}/${o.metadata.name}: missing labels ${missing.join(', ')}`);
  }
  const secretKeys = new Map<string, string[]>();
  for (const o of objects) {
    if (o.kind === 'Secret' || o.kind === 'ConfigMap') {
      const keys = [...Object.keys((o.data as object) ?? {}), ...Object.keys((o.stringData as object) ?? {})];
      secretKeys.set(`${o.kind}/${o.metadata.name}`, keys);
    }
  }
  for (const o of objects) {
    const pod = podSpecOf(o);
    if (!pod) continue;
    const where = `${o.kind}/${o.metadata.name}`;
    if (pod.securityContext?.runAsNonRoot !== true) errors.push(`${where}: pod must set runAsNonRoot`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const cw = `${where} ${c.name}`;
      if (!c.resources?.requests || !c.resources?.limits) errors.push(`${cw}: resources need requests and limits`);
      const sc = c.securityContext;
      if (
        sc?.readOnlyRootFilesystem !== true ||
        sc?.allowPrivilegeEscalation !== false ||
        !sc?.capabilities?.drop?.includes('ALL')
      ) {
        errors.push(`${cw}: securityContext must be read-only root, no privilege escalation, drop ALL`);
      }
      if (!c.image.startsWith(IMAGE)) continue;
      const component = c.args?.[0];
      if (!isComponent(component)) {
        errors.push(`${cw}: runs "${String(component)}", not a component of the image`);
        continue;
      }
      const names = (c.env ?? []).map((e) => e.name);
      for (const ef of c.envFrom ?? []) {
        const ref = ef.secretRef ? `Secret/${ef.secretRef.name}` : `ConfigMap/${ef.configMapRef?.name}`;
        const keys = secretKeys.get(ref);
        if (!keys) errors.push(`${cw}: envFrom ${ref} does not exist`);
        names.push(...(keys ?? []));
      }
      errors.push(...checkEnv(cw, component, names));
      const portVar = HTTP_PORT_VAR[component];
      if (portVar) {
        const value = (c.env as { name: string; value?: string }[] | undefined)?.find((e) => e.name === portVar)?.value;
        const http = c.ports?.find((p) => p.name === 'http');
        if (!http || String(http.containerPort) !== value)
          errors.push(`${cw}: containerPort ${http?.containerPort} does not match ${portVar}=${value}`);
        for (const [kind, probe] of [
          ['readiness', c.readinessProbe],
          ['liveness', c.livenessProbe],
        ] as const) {
          const get = probe?.httpGet;
          if (!get) {
            errors.push(`${cw}: no ${kind} probe`);
            continue;
          }
          if (!servedPaths.includes(get.path)) errors.push(`${cw}: ${kind} probe path ${get.path} is not served`);
          if (get.port !== 'http' && get.port !== http?.containerPort)
            errors.push(`${cw}: ${kind} probe port ${get.port} is not the http port`);
        }
        if (c.readinessProbe?.httpGet?.path !== '/readyz' || c.livenessProbe?.httpGet?.path !== '/healthz')
          errors.push(`${cw}: readiness must be /readyz, liveness /healthz`);
      }
    }
  }
  // Services point at ports their pods declare.
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const spec = svc.spec as { selector?: Record<string, string>; ports: { targetPort?: string | number }[] };
    const pods = objects.filter((o) => {
      const labels =
        (o.spec as { template?: { metadata?: { labels?: Record<string, string> } } })?.template?.metadata?.labels ?? {};
      return podSpecOf(o) && Object.entries(spec.selector ?? {}).every(([k, v]) => labels[k] === v);
    });
    if (pods.length === 0) errors.push(`Service/${svc.metadata.name}: selects no workload`);
    for (const p of spec.ports) {
      const ok = pods.some((o) =>
        podSpecOf(o)!.containers.some((c) =>
          (c.ports ?? []).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort),
        ),
      );
      if (!ok) errors.push(`Service/${svc.metadata.name}: targetPort ${String(p.targetPort)} is not a container port`);
    }
  }
  // Each service and the monitor reach only their own database (and the broker).
  for (const s of DATABASE_OWNERS) {
    const np = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === s);
    if (!np) {
      errors.push(`NetworkPolicy/${s} is missing`);
      continue;
    }
    const egress =
      (np.spec as { egress?: { to?: { podSelector?: { matchLabels?: Record<string, string> } }[] }[] }).egress ?? [];
    const targets = egress
      .flatMap((e) => (e.to ?? []).map((t) => t.podSelector?.matchLabels?.['app.kubernetes.io/name']))
      .sort();
    if (JSON.stringify(targets) !== JSON.stringify([`postgres-${s}`, 'rabbitmq'].sort()))
      errors.push(`NetworkPolicy/${s}: egress to ${targets.join(', ')}`);
    // Its database is reached by its owner and the migrate Job, and by the relay only where there is an outbox.
    const db = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === `postgres-${s}`);
    const ingress =
      (db?.spec as { ingress?: { from?: { podSelector?: { matchLabels?: Record<string, string> } }[] }[] } | undefined)
        ?.ingress ?? [];
    const from = ingress
      .flatMap((i) => (i.from ?? []).map((f) => f.podSelector?.matchLabels?.['app.kubernetes.io/name']))
      .sort();
    const expected = [s, 'saga-migrate', ...(isServiceName(s) ? ['relay'] : [])].sort();
    if (JSON.stringify(from) !== JSON.stringify(expected))
      errors.push(`NetworkPolicy/postgres-${s}: ingress from ${from.join(', ')}, expected ${expected.join(', ')}`);
  }
  errors.push(...checkOperatorPorts(objects));
  if (
    !objects.some(
      (o) =>
        o.kind === 'NetworkPolicy' &&
        (o.spec as { podSelector?: object }).podSelector &&
        Object.keys((o.spec as { podSelector: object }).podSelector).length === 0 &&
        o.metadata.name === 'default-deny',
    )
  ) {
    errors.push('NetworkPolicy/default-deny is missing');
  }
  return errors;
}

type PolicyPort = { port?: number | string };
type PolicyRule = { from?: object[]; ports?: PolicyPort[] };

/**
 * Operator-only listeners (a service's or the monitor's admin listener, the relay's port): each admin listener has a
 * `<name>-admin` Service of its own, and the component's NetworkPolicy admits such a port only `from` named peers,
 * never from anywhere.
 */
function checkOperatorPorts(objects: K8sObject[]): string[] {
  const errors: string[] = [];
  for (const o of objects.filter((x) => x.kind === 'Deployment')) {
    const pod = podSpecOf(o)!;
    for (const c of pod.containers) {
      const component = c.args?.[0];
      if (!c.image.startsWith(IMAGE) || !isComponent(component)) continue;
      const portVar = METRICS_PORT_VAR[component];
      if (!portVar) continue;
      const name = o.metadata.name;
      const value = Number(
        (c.env as { name: string; value?: string }[] | undefined)?.find((e) => e.name === portVar)?.value,
      );
      if (!value) {
        errors.push(`Deployment/${name}: ${portVar} is not set`);
        continue;
      }
      if (portVar === 'ADMIN_PORT') {
        const admin = c.ports?.find((p) => p.name === 'admin');
        if (admin?.containerPort !== value)
          errors.push(`Deployment/${name}: no container port "admin" at ADMIN_PORT=${value}`);
        const svc = objects.find((x) => x.kind === 'Service' && x.metadata.name === `${name}-admin`);
        const targets = ((svc?.spec as { ports?: { targetPort?: string | number }[] } | undefined)?.ports ?? []).map(
          (p) => p.targetPort,
        );
        if (!targets.includes('admin') && !targets.includes(value))
          errors.push(`Service/${name}-admin: missing, or not targeting the admin port of ${name}`);
      }
      const np = objects.find((x) => x.kind === 'NetworkPolicy' && x.metadata.name === name);
      const rules = (np?.spec as { ingress?: PolicyRule[] } | undefined)?.ingress ?? [];
      const covering = rules.filter((r) => !r.ports || r.ports.some((p) => p.port === value || p.port === 'admin'));
      if (covering.length === 0) errors.push(`NetworkPolicy/${name}: does not admit anyone to port ${value}`);
      if (covering.some((r) => !r.from || r.from.length === 0))
        errors.push(`NetworkPolicy/${name}: admits anyone to the operator-only port ${value} (name who, with from)`);
    }
  }
  return errors;
}

// ---------------------------------------------------------------- Dockerfile

export function dockerignored(): string[] {
  return readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

/** Node LTS lines the image may use: active or maintenance LTS in November 2026 (22 until April 2027, 24 until April 2028, 26). */
export const SUPPORTED_NODE_LTS = [22, 24, 26];
/** OCI labels the final image carries. */
export const OCI_LABELS = [
  'org.opencontainers.image.title',
  'org.opencontainers.image.description',
  'org.opencontainers.image.version',
];

/**
 * Multi-stage, official slim bases of a supported Node LTS with the minor pinned, OCI labels, non-root final
 * stage, COPY sources that exist and are not ignored.
 */
/** The global ARGs (before the first FROM) with their defaults. */
function globalArgs(text: string): Map<string, string> {
  const df = DockerfileParser.parse(text);
  const first = df.getFROMs()[0];
  const args = new Map<string, string>();
  for (const i of df.getInstructions()) {
    if (i === first) break;
    if (i.getKeyword() !== 'ARG') continue;
    const m = /^(\w+)(?:=(\S*))?$/.exec(i.getArgumentsContent() ?? '');
    if (m) args.set(m[1]!, m[2] ?? '');
  }
  return args;
}

/** The image of each FROM, as written (`${NODE_IMAGE}`) and with the global ARGs' defaults put in. */
export function baseImagesOf(text: string): { stage: string | undefined; written: string; image: string }[] {
  const args = globalArgs(text);
  return DockerfileParser.parse(text)
    .getFROMs()
    .map((f) => {
      const written = f.getImage() ?? '';
      return {
        stage: f.getBuildStage() ?? undefined,
        written,
        image: written.replace(/\$\{?(\w+)\}?/g, (_m, n: string) => args.get(n) ?? ''),
      };
    });
}

/** The instructions of the stage named `stage`. */
function stageInstructions(text: string, stage: string) {
  const df = DockerfileParser.parse(text);
  const instructions = df.getInstructions();
  const froms = df.getFROMs();
  const i = froms.findIndex((f) => f.getBuildStage() === stage);
  if (i < 0) return [];
  const start = instructions.indexOf(froms[i]!);
  const end = froms[i + 1] ? instructions.indexOf(froms[i + 1]!) : instructions.length;
  return instructions.slice(start, end);
}

const NPM_PATHS = ['/usr/local/lib/node_modules/npm', '/usr/local/bin/npm', '/usr/local/bin/npx'];

export function validateDockerfile(text: string): string[] {
  const errors: string[] = [];
  const df = DockerfileParser.parse(text);
  const froms = df.getFROMs();
  if (froms.length < 2) errors.push('Dockerfile: expected a multi-stage build');
  const bases = baseImagesOf(text);
  // One base for every stage, named once: a build argument (a pipeline pins its digest with --build-arg).
  for (const b of bases)
    if (!/^\$\{?\w+\}?$/.test(b.written))
      errors.push(`Dockerfile: stage ${b.stage ?? '?'} names its base ${b.written} instead of a build ARG`);
  for (const b of bases) {
    const ref = b.image.split('@')[0]!;
    const m = /^node:(\d+)(\.\d+)?(\.\d+)?-([\w]+-)?slim$/.exec(ref);
    if (!m) errors.push(`Dockerfile: base ${ref} is not an official Node slim image`);
    else if (!SUPPORTED_NODE_LTS.includes(Number(m[1])))
      errors.push(`Dockerfile: base ${ref} is not a supported Node LTS (${SUPPORTED_NODE_LTS.join(', ')})`);
    else if (!m[2]) errors.push(`Dockerfile: base ${ref} does not pin a minor version`);
  }
  const instructions = df.getInstructions();
  const lastFrom = instructions.lastIndexOf(froms[froms.length - 1]!);
  const finalUsers = instructions
    .slice(lastFrom)
    .filter((i) => i.getKeyword() === 'USER')
    .map((i) => i.getArgumentsContent());
  if (finalUsers.length === 0 || ['root', '0'].includes(finalUsers[finalUsers.length - 1] ?? ''))
    errors.push('Dockerfile: the final stage must run as a non-root USER');
  const ignored = dockerignored();
  for (const i of instructions.filter((x) => x.getKeyword() === 'COPY')) {
    const args = i.getArguments().map((a) => a.getValue());
    if (fromFlag(i)) continue;
    for (const src of args.slice(0, -1).filter((a) => !a.startsWith('--'))) {
      if (!existsSync(path.join(ROOT, src))) errors.push(`Dockerfile: COPY ${src} does not exist`);
      if (ignored.some((p) => p === src || src.startsWith(`${p}/`)))
        errors.push(`Dockerfile: COPY ${src} is excluded by .dockerignore`);
    }
  }
  const labels = instructions
    .slice(lastFrom)
    .filter((i) => i.getKeyword() === 'LABEL')
    .map((i) => i.getArgumentsContent() ?? '')
    .join(' ');
  for (const l of OCI_LABELS)
    if (!labels.includes(`${l}=`)) errors.push(`Dockerfile: the final stage lacks the OCI label ${l}`);
  // The production install: no install scripts (none of the production dependencies needs one).
  const installs = instructions
    .filter((i) => i.getKeyword() === 'RUN')
    .map((i) => i.getArgumentsContent() ?? '')
    .filter((r) => /npm ci\b[^;&|]*--omit=dev/.test(r));
  if (installs.length === 0) errors.push('Dockerfile: no production install (npm ci --omit=dev)');
  for (const r of installs)
    if (!/npm ci\b[^;&|]*--ignore-scripts/.test(r))
      errors.push('Dockerfile: the production install runs install scripts (add --ignore-scripts)');
  // The run stage carries no package manager: it runs no npm and deletes the base image's.
  const run = stageInstructions(text, 'run');
  if (run.length === 0) errors.push('Dockerfile: no stage named run');
  const runCommands = run.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
  if (runCommands.some((r) => /(^|[\s;&|])(npm|npx)\s/.test(r))) errors.push('Dockerfile: the run stage runs npm');
  const removed = runCommands.filter((r) => /\brm\b/.test(r)).join(' ');
  for (const p of NPM_PATHS)
    if (!removed.split(/\s+/).includes(p)) errors.push(`Dockerfile: the run stage keeps npm (${p} is not removed)`);
  // npm ci needs every workspace's package.json (the lockfile lists them all), and the bundle every workspace's src.
  for (const ws of workspaces()) {
    for (const stage of ['build', 'deps'])
      if (!copiesOfStage(text, stage).includes(`${ws}/package.json`))
        errors.push(`Dockerfile: stage ${stage} does not COPY ${ws}/package.json`);
    if (!copiesOfStage(text, 'build').includes(`${ws}/src`))
      errors.push(`Dockerfile: stage build does not COPY ${ws}/src`);
  }
  const entry = instructions.find((i) => i.getKeyword() === 'ENTRYPOINT')?.getArgumentsContent() ?? '';
  if (!entry.includes('dist/saga.js')) errors.push('Dockerfile: ENTRYPOINT must run dist/saga.js');
  return errors;
}

/** The workspace directories of the root package.json (`services/*` and the like expanded). */
export function workspaces(): string[] {
  const globs = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] })
    .workspaces;
  return globs.flatMap((g) =>
    g.endsWith('/*')
      ? readdirSync(path.join(ROOT, g.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory() && existsSync(path.join(ROOT, g.slice(0, -2), d.name, 'package.json')))
          .map((d) => `${g.slice(0, -2)}/${d.name}`)
      : [g],
  );
}

/** COPY --from=<stage>: copies from another stage, not from the build context. */
function fromFlag(i: unknown): boolean {
  const flags = (i as { getFlags?: () => { getName: () => string }[] }).getFlags?.() ?? [];
  return flags.some((f) => f.getName() === 'from');
}

/** The COPY sources of the stage named `stage` that come from the build context. */
export function copiesOfStage(text: string, stage: string): string[] {
  return stageInstructions(text, stage)
    .filter((x) => x.getKeyword() === 'COPY' && !fromFlag(x))
    .flatMap((x) =>
      x
        .getArguments()
        .map((a) => a.getValue())
        .slice(0, -1),
    );
}
