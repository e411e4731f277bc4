/**
 * The observability pack against the code: Compose's Prometheus scrapes every component where Compose runs it and
 * Grafana gets the dashboard, the rules' job names are the components' names under Compose and on Kubernetes, and
 * every metric, label and value an alert or a panel asks for is exported by the real processes (relay, services,
 * monitor) once an order has been confirmed and one cancelled.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { readAlertGroups } from '../../scripts/lib/observability';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { interpolate, isComponent, loadCompose, METRICS_PORT_VAR, renderKustomize } from '../support/packaging';
import { killAll, ROOT } from '../support/process';
import {
  addExposition,
  checkAgainstExported,
  dashboardQueries,
  emptyExported,
  parsePromQL,
  readDashboard,
  ruleQueries,
  type FailureOnly,
} from '../support/promql';
import { sagaClient } from '../support/saga';
import { startMonitor, startStack, type ServiceProc, type Stack } from '../support/stack';
import { freePort } from '../support/pg-cluster';
import { waitUntil } from '../support/wait';

type ComposeService = {
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
};
const compose = loadCompose().services as Record<string, ComposeService>;
/** Job names the rules select on (up{job=...}), every value a job matcher accepts. */
const jobsInRules = (): string[] =>
  ruleQueries(readAlertGroups()).flatMap((q) =>
    parsePromQL(q).selectors.flatMap((s) =>
      s.matchers.filter((m) => m.label === 'job').flatMap((m) => (m.op === '=~' ? m.value.split('|') : [m.value])),
    ),
  );
/** Where a Compose service mounts `hostDir` (relative to the repository), if it does. */
const mountOf = (svc: ComposeService, hostDir: string) =>
  svc.volumes?.map((v) => v.split(':')).find(([src]) => path.normalize(src!) === path.normalize(`./${hostDir}`))?.[1];

/** Prometheus's own checker: PROMTOOL, else on PATH (.ci/run installs it from Debian's prometheus package). */
const promtool = (...args: string[]) => {
  try {
    return execFileSync(process.env.PROMTOOL ?? 'promtool', args, { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(
        'promtool not found: see the prerequisites in docs/development.md (or set PROMTOOL=/path/to/promtool)',
        {
          cause: err,
        },
      );
    throw err;
  }
};

describe('promtool (Prometheus itself)', () => {
  it("accepts the Compose profile's configuration and the rules, and each alert fires on what it describes, not on the healthy case beside it", () => {
    expect(promtool('check', 'config', 'observability/prometheus/prometheus.yml')).toContain('SUCCESS');
    expect(promtool('test', 'rules', 'observability/prometheus/alerts.test.yml')).toContain('SUCCESS');
    // Every alert has a unit test.
    const tests = readFileSync(path.join(ROOT, 'observability/prometheus/alerts.test.yml'), 'utf8');
    expect(
      readAlertGroups()
        .flatMap((g) => g.rules.map((r) => r.alert))
        .filter((a) => !tests.includes(`alertname: ${a}`)),
    ).toEqual([]);
  });

  it('fails a rule file whose alert would fire on the healthy case (unlimited safe WAL, -1)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'alerts-'));
    try {
      const rules = readFileSync(path.join(ROOT, 'observability/prometheus/alerts.yml'), 'utf8');
      writeFileSync(path.join(dir, 'alerts.yml'), rules.replace('relay_slot_safe_wal_bytes >= 0 and ', ''));
      writeFileSync(
        path.join(dir, 'alerts.test.yml'),
        readFileSync(path.join(ROOT, 'observability/prometheus/alerts.test.yml')),
      );
      expect(() => promtool('test', 'rules', path.join(dir, 'alerts.test.yml'))).toThrow(/RelaySafeWalLow/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the observability profile of docker-compose.yml', () => {
  const prometheus = YAML.parse(readFileSync(path.join(ROOT, 'observability/prometheus/prometheus.yml'), 'utf8')) as {
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };

  it('scrapes every component that serves /metrics, as a job named after it, at its Compose name and admin port', () => {
    const metricsPortVar = (c: string) => METRICS_PORT_VAR[c as keyof typeof METRICS_PORT_VAR];
    const expected = Object.entries(compose)
      .filter(([, svc]) => isComponent(svc.command?.[0]) && metricsPortVar(svc.command![0]!))
      .map(([name, svc]) => ({
        job: svc.command![0]!,
        target: `${name}:${interpolate(String(svc.environment![metricsPortVar(svc.command![0]!)!]))}`,
      }))
      .sort((a, b) => a.job.localeCompare(b.job));
    expect(expected.map((e) => e.job)).toEqual(['inventory', 'monitor', 'order', 'payment', 'relay']);
    const scraped = prometheus.scrape_configs
      .map((c) => ({ job: c.job_name, target: c.static_configs.flatMap((s) => s.targets).join() }))
      .sort((a, b) => a.job.localeCompare(b.job));
    expect(scraped).toEqual(expected);
    // The rules' jobs are those.
    expect([...new Set(jobsInRules())].filter((j) => !expected.some((e) => e.job === j))).toEqual([]);
  });

  it('mounts the rules into Prometheus and the data source and dashboard into Grafana', () => {
    const promDir = mountOf(compose.prometheus!, 'observability/prometheus');
    expect(promDir).toBe('/etc/prometheus');
    expect(compose.prometheus!.command).toContain(`--config.file=${promDir}/prometheus.yml`);
    for (const f of prometheus.rule_files)
      expect(existsSync(path.join(ROOT, 'observability/prometheus', f))).toBe(true);
    expect(prometheus.rule_files).toContain('alerts.yml');

    const provisioning = mountOf(compose.grafana!, 'observability/grafana/provisioning');
    const dashboards = mountOf(compose.grafana!, 'observability/grafana/dashboards');
    expect(provisioning).toBe('/etc/grafana/provisioning');
    const provider = YAML.parse(
      readFileSync(path.join(ROOT, 'observability/grafana/provisioning/dashboards/saga.yml'), 'utf8'),
    ) as { providers: { options: { path: string } }[] };
    expect(provider.providers[0]!.options.path).toBe(dashboards);
    const home = compose.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(
      home.startsWith(`${dashboards}/`) &&
        existsSync(path.join(ROOT, 'observability/grafana/dashboards', path.basename(home))),
    ).toBe(true);
    const datasource = YAML.parse(
      readFileSync(path.join(ROOT, 'observability/grafana/provisioning/datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { url: string }[] };
    expect(datasource.datasources[0]!.url).toBe(`http://prometheus:${compose.prometheus!.ports![0]!.split(':').pop()}`);
  });
});

it('on Kubernetes the PodMonitor names jobs after app.kubernetes.io/name, and every job of the rules is a workload of that name', () => {
  const [podMonitor] = renderKustomize(path.join(ROOT, 'observability/k8s')).filter(
    (o) => o.kind === 'PodMonitor',
  ) as unknown as { spec: { jobLabel: string; selector: { matchLabels: Record<string, string> } } }[];
  expect(podMonitor!.spec.jobLabel).toBe('app.kubernetes.io/name');
  const workloads = renderKustomize(path.join(ROOT, 'k8s/overlays/dev')).filter((o) => o.kind === 'Deployment');
  const podLabels = workloads.map(
    (o) => (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels,
  );
  const selected = podLabels
    .filter((l) => Object.entries(podMonitor!.spec.selector.matchLabels).every(([k, v]) => l[k] === v))
    .map((l) => l['app.kubernetes.io/name']);
  expect(selected.sort()).toEqual(['inventory', 'monitor', 'order', 'payment', 'relay']);
  expect([...new Set(jobsInRules())].filter((j) => !selected.includes(j))).toEqual([]);
  // Each workload is scraped where it serves /metrics (its admin listener; the relay's one port), and only there.
  const endpoints = (
    podMonitor as unknown as {
      spec: { podMetricsEndpoints: { port: string; relabelings?: { action: string; regex: string }[] }[] };
    }
  ).spec.podMetricsEndpoints;
  const scraped = workloads.map((o) => {
    const labels = (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
    const c = (
      o.spec as {
        template: {
          spec: {
            containers: {
              args: string[];
              env: { name: string; value?: string }[];
              ports: { name: string; containerPort: number }[];
            }[];
          };
        };
      }
    ).template.spec.containers[0]!;
    const portVar = METRICS_PORT_VAR[c.args[0] as keyof typeof METRICS_PORT_VAR]!;
    const metricsPort = Number(c.env.find((e) => e.name === portVar)?.value);
    const ports = endpoints
      .filter((e) =>
        (e.relabelings ?? []).every(
          (r) => r.action !== 'keep' || new RegExp(`^(?:${r.regex})$`).test(labels['app.kubernetes.io/name']!),
        ),
      )
      .map((e) => c.ports.find((p) => p.name === e.port)?.containerPort)
      .filter((p) => p !== undefined);
    return { name: o.metadata.name, ports, metricsPort };
  });
  for (const w of scraped) expect({ name: w.name, ports: w.ports }).toEqual({ name: w.name, ports: [w.metricsPort] });
});

describe('every metric the alerts and the dashboard use, on the running processes', () => {
  let env: TestEnv;
  let stack: Stack;
  let monitor: ServiceProc;
  let relayUrl: string;

  beforeAll(async () => {
    env = await createTestEnv('observability');
    const relayPort = await freePort();
    relayUrl = `http://127.0.0.1:${relayPort}`;
    stack = await startStack(env, { relay: { RELAY_PORT: String(relayPort) } });
    monitor = await startMonitor(env);
  });
  afterAll(async () => {
    await stack?.stop();
    await monitor?.proc.kill('SIGTERM');
    await killAll();
    await env?.close();
  });

  it('are exported, with the labels and values the queries select, after one order confirmed and one cancelled', async () => {
    const url = (s: 'order' | 'inventory' | 'payment') => stack.services[s].url;
    const adminOf = (s: 'order' | 'inventory' | 'payment') => stack.services[s].adminUrl;
    const saga = sagaClient(() => ({ order: url('order'), inventory: url('inventory'), payment: url('payment') }));
    const sku = await saga.product(1, 500);
    const customer = await saga.account(10_000);
    const confirmed = await saga.place(customer, [{ sku, quantity: 1 }]);
    expect((await saga.finalOrder(confirmed)).status).toBe('CONFIRMED');
    const cancelled = await saga.place(customer, [{ sku, quantity: 1 }]);
    expect((await saga.finalOrder(cancelled)).status).toBe('CANCELLED');
    // Series that appear later: the monitor's durations as it applies the final events, and the relay's operator
    // queue gauge, which reads each queue's depth every 15 s (the dead-letter queues exist once the services ran).
    await waitUntil(
      async () =>
        (await metricValue(monitor.adminUrl, 'saga_duration_seconds_count', { outcome: 'cancelled' })) >= 1 &&
        (await metricValue(monitor.adminUrl, 'saga_duration_seconds_count', { outcome: 'confirmed' })) >= 1,
      {
        timeoutMs: 30_000,
        message: 'the monitor saw both sagas finish',
      },
    );
    const relayQueues = async () =>
      (
        addExposition(emptyExported(), await (await fetch(`${relayUrl}/metrics`)).text()).samples.get(
          'saga_operator_queue_messages',
        ) ?? []
      ).map((l) => l.queue);
    await waitUntil(async () => (await relayQueues()).some((q) => q?.endsWith('.events.dlq')), {
      timeoutMs: 40_000,
      intervalMs: 500,
      message: 'the relay gauges the dead-letter queues',
    });

    const exported = emptyExported();
    for (const u of [relayUrl, ...(['order', 'inventory', 'payment'] as const).map(adminOf), monitor.adminUrl])
      addExposition(exported, await (await fetch(`${u}/metrics`)).text());
    // Dead-lettering happens only when something fails: check the value against the code that counts it (the consumer's failure settlement).
    const consumerSource = readFileSync(path.join(ROOT, 'packages/common/src/messaging/failure-settlement.ts'), 'utf8');
    const failureOnly: FailureOnly = { consumer_messages_total: { outcome: ['dead_lettered'] } };
    for (const v of failureOnly.consumer_messages_total!.outcome!) expect(consumerSource).toContain(`outcome: '${v}'`);

    const queries = [...ruleQueries(), ...dashboardQueries(readDashboard())];
    expect(queries.length).toBeGreaterThan(25);
    expect(queries.flatMap((q) => checkAgainstExported(q, exported, failureOnly))).toEqual([]);
    // Every metric used has samples in this run, so the labels and values of every selector were checked too.
    const used = new Set(
      queries.flatMap((q) => parsePromQL(q).selectors.map((s) => s.metric)).filter((m) => m !== 'up'),
    );
    expect([...used].filter((m) => !(exported.samples.get(m) ?? []).length)).toEqual([]);
  });
});
