/**
 * The observability pack offline: the alerting rules and the dashboard are well formed, every PromQL expression
 * parses, the PrometheusRule is the rule file, the runbook (docs/operations.md) covers every alert, and the checks the
 * integration test runs against real /metrics catch a wrong metric, label or value.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { PROMETHEUS_RULE_FILE, prometheusRuleOf, readAlertGroups } from '../../scripts/lib/observability';
import {
  addExposition,
  checkAgainstExported,
  dashboardQueries,
  emptyExported,
  panelsOf,
  parsePromQL,
  readDashboard,
  ruleQueries,
} from '../support/promql';
import { ROOT } from '../support/process';

const groups = readAlertGroups();
const rules = groups.flatMap((g) => g.rules);
const dashboard = readDashboard();

describe('alerting rules', () => {
  it('are well formed: unique names, a severity, a summary and a description, durations Prometheus accepts', () => {
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    expect(rules.length).toBeGreaterThanOrEqual(10);
    for (const r of rules) {
      expect([r.alert, r.labels.severity]).toEqual([r.alert, expect.stringMatching(/^(warning|critical)$/)]);
      expect(r.annotations.summary).toEqual(expect.any(String));
      expect(r.annotations.description).toEqual(expect.any(String));
      if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smh]$/);
    }
  });

  it('parse as PromQL, every one', () => {
    expect(ruleQueries(groups).flatMap((q) => parsePromQL(q).errors)).toEqual([]);
  });

  it('are the PrometheusRule for Kubernetes, unchanged (npm run observability:rules)', () => {
    const committed = readFileSync(path.join(ROOT, PROMETHEUS_RULE_FILE), 'utf8');
    expect(committed).toBe(prometheusRuleOf(groups));
    const rule = YAML.parse(committed) as { apiVersion: string; kind: string; spec: { groups: unknown } };
    expect(rule).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule' });
    expect(rule.spec.groups).toEqual(groups);
  });

  it('each link to their own section of the runbook in docs/operations.md', () => {
    const runbook = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
    const sections = new Set([...runbook.matchAll(/^### (\w+)$/gm)].map((m) => m[1]!.toLowerCase()));
    const links = rules.map((r) => [r.alert, r.annotations?.runbook_url]);
    expect(links.filter(([a, url]) => url !== `docs/operations.md#${a!.toLowerCase()}`)).toEqual([]);
    expect(rules.map((r) => r.alert).filter((a) => !sections.has(a.toLowerCase()))).toEqual([]);
  });
});

describe('the Grafana dashboard', () => {
  const queries = dashboardQueries(dashboard);
  it('has unique panel ids, a data source variable and a query in every panel that is not a row', () => {
    const panels = panelsOf(dashboard);
    expect(new Set(panels.map((p) => (p as { id: number }).id)).size).toBe(panels.length);
    expect(dashboard.templating?.list).toContainEqual(
      expect.objectContaining({ name: 'datasource', type: 'datasource' }),
    );
    for (const p of panels.filter((x) => (x as { type: string }).type !== 'row'))
      expect(p.targets?.length).toBeGreaterThan(0);
  });

  it('parses as PromQL once Grafana has replaced its interval variables', () => {
    expect(queries.flatMap((q) => parsePromQL(q).errors)).toEqual([]);
  });

  it('shows orders, saga durations, stuck sagas, relay lag and WAL, operator queues and consumer outcomes', () => {
    const used = new Set(queries.flatMap((q) => parsePromQL(q).selectors.map((s) => s.metric)));
    for (const m of [
      'consumer_messages_total',
      'saga_duration_seconds_count',
      'saga_duration_seconds_bucket',
      'sagas_stuck',
      'saga_oldest_pending_seconds',
      'relay_streaming',
      'relay_replication_lag_seconds',
      'relay_replication_lag_bytes',
      'relay_slot_retained_wal_bytes',
      'relay_slot_safe_wal_bytes',
      'saga_operator_queue_messages',
    ])
      expect([m, used.has(m)]).toEqual([m, true]);
  });
});

describe('checking queries against what processes export', () => {
  const exported = addExposition(
    emptyExported(),
    [
      '# HELP relay_streaming x',
      '# TYPE relay_streaming gauge',
      'relay_streaming{source="order"} 1',
      '# TYPE saga_duration_seconds histogram',
      'saga_duration_seconds_bucket{le="0.1",outcome="confirmed"} 1',
      '# TYPE relay_slot_lost gauge',
    ].join('\n'),
  );
  const check = (expr: string) =>
    checkAgainstExported({ where: 'q', expr }, exported, { relay_streaming: { source: ['payment'] } });

  it('accepts what is exported, histogram series, target labels, failure-only values and metrics without samples yet', () => {
    expect(check('max by (source) (relay_streaming{source=~"ord.*", job="relay"}) == 0')).toEqual([]);
    expect(
      check(
        'histogram_quantile(0.99, sum by (le, outcome) (rate(saga_duration_seconds_bucket{outcome="confirmed"}[5m])))',
      ),
    ).toEqual([]);
    expect(
      check(
        'relay_streaming{source="payment"} + on() group_left relay_slot_lost{source="x"} + absent(up{job="relay"})',
      ),
    ).toEqual([]);
  });

  it('names a metric nobody exports, a missing label, a value no series has, a bad grouping and a syntax error', () => {
    expect(check('relay_streamin == 0')).toEqual(['q: relay_streamin is not exported by any component']);
    expect(check('relay_streaming{slot="x"}').join()).toContain('relay_streaming has no label slot');
    expect(check('relay_streaming{source="ordr"}').join()).toContain(
      'no relay_streaming series has source="ordr" (values: order)',
    );
    expect(check('sum by (queue) (relay_streaming)').join()).toContain('groups by queue');
    expect(check('sum(rate(relay_streaming[5m])').join()).toContain('PromQL syntax error');
    expect(check('rate(relay_streaming[$__rate_interval]) + $oops').join()).toContain('unknown variable $oops');
  });
});
