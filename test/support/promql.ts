/**
 * The observability pack read as data: the PromQL of every alerting rule and dashboard panel, parsed with the
 * Prometheus project's own grammar (@prometheus-io/lezer-promql, what its web UI uses), and checked against what
 * the processes export on /metrics. Every checker returns a list of errors; an empty list is a pass.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { readAlertGroups } from '../../scripts/lib/observability';
import { ROOT } from './process';

/** A node of the parse tree, typed from the parser itself (one copy of @lezer/common's types, whatever the module mode). */
type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

export const DASHBOARD_FILE = 'observability/grafana/dashboards/saga-overview.json';

/** One PromQL expression and where it comes from (for messages). */
export type Query = { where: string; expr: string };

/** Grafana's interval variables, given a value so the query parses as Prometheus would receive it. */
const GRAFANA_INTERVALS: Record<string, string> = { __rate_interval: '5m', __interval: '1m', __range: '1h' };

type Panel = { title?: string; targets?: { expr?: string; refId?: string }[]; panels?: Panel[] };
export type Dashboard = {
  uid: string;
  title: string;
  panels: Panel[];
  templating?: { list: { name: string; type: string }[] };
};

export const readDashboard = (file = DASHBOARD_FILE): Dashboard =>
  JSON.parse(readFileSync(path.join(ROOT, file), 'utf8')) as Dashboard;

/** Every panel, those inside rows included. */
export function panelsOf(d: { panels: Panel[] }): Panel[] {
  return d.panels.flatMap((p) => [p, ...panelsOf({ panels: p.panels ?? [] })]);
}

export function dashboardQueries(d: Dashboard): Query[] {
  return panelsOf(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `dashboard panel "${p.title}" ${t.refId}`, expr: t.expr ?? '' })),
  );
}

export function ruleQueries(groups = readAlertGroups()): Query[] {
  return groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert}`, expr: r.expr })));
}

/** The expression Prometheus receives: Grafana's variables replaced; an unknown variable is an error. */
export function expand(q: Query): { expr: string; errors: string[] } {
  const errors: string[] = [];
  const expr = q.expr.replace(/\$\{?(\w+)\}?/g, (m, name: string) => {
    if (GRAFANA_INTERVALS[name]) return GRAFANA_INTERVALS[name];
    errors.push(`${q.where}: unknown variable ${m}`);
    return m;
  });
  return { expr, errors };
}

/** A selector: metric name and label matchers (op is =, !=, =~ or !~). */
export type Selector = { metric: string; matchers: { label: string; op: string; value: string }[] };
/** An aggregation's grouping labels and the metrics it aggregates. */
export type Grouping = { labels: string[]; metrics: string[] };
export type Parsed = { errors: string[]; selectors: Selector[]; groupings: Grouping[] };

const OPS: Record<string, string> = { EqlSingle: '=', Neq: '!=', EqlRegex: '=~', NeqRegex: '!~' };

/** Parse one query: syntax errors with their position, its selectors and its aggregations' grouping labels. */
export function parsePromQL(q: Query): Parsed {
  const { expr, errors } = expand(q);
  const tree = parser.parse(expr);
  const text = (n: SyntaxNode) => expr.slice(n.from, n.to);
  tree.iterate({
    enter: (n) => {
      if (n.type.isError)
        errors.push(`${q.where}: PromQL syntax error at ${n.from}: ${expr.slice(0, n.from)} >>> ${expr.slice(n.from)}`);
    },
  });
  const selectorsIn = (node: SyntaxNode): Selector[] => {
    const out: Selector[] = [];
    const cursor = node.cursor();
    do {
      if (cursor.name !== 'VectorSelector') continue;
      const sel = cursor.node;
      const id = sel.getChild('Identifier');
      const matchers = (sel.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []).map((m) => ({
        label: text(m.getChild('LabelName')!),
        op: OPS[m.getChild('MatchOp')?.firstChild?.name ?? ''] ?? '?',
        // PromQL's double-quoted strings escape as JSON's do for what we write (backslash, quote).
        value: JSON.parse(text(m.getChild('StringLiteral')!)) as string,
      }));
      if (id) out.push({ metric: text(id), matchers });
    } while (cursor.next() && cursor.from < node.to);
    return out;
  };
  const selectors = selectorsIn(tree.topNode);
  const groupings: Grouping[] = [];
  tree.iterate({
    enter: (n) => {
      if (n.name !== 'AggregateExpr') return;
      const labels = (
        n.node.getChild('AggregateModifier')?.getChild('GroupingLabels')?.getChildren('LabelName') ?? []
      ).map(text);
      const metrics = [...new Set(selectorsIn(n.node).map((s) => s.metric))];
      if (labels.length) groupings.push({ labels, metrics });
    },
  });
  return { errors, selectors, groupings };
}

// ---------------------------------------------------------------- what the processes export

/** Metric names a scrape declares (# TYPE, histogram and summary series included) and the label sets of its samples. */
export type Exported = { declared: Set<string>; samples: Map<string, Record<string, string>[]> };

export function emptyExported(): Exported {
  return { declared: new Set(), samples: new Map() };
}

/** Add one /metrics text (Prometheus exposition format) to `into`. */
export function addExposition(into: Exported, text: string): Exported {
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)$/.exec(line);
    if (type) {
      const [, name, kind] = type;
      into.declared.add(name!);
      const suffixes =
        kind === 'histogram' ? ['_bucket', '_sum', '_count'] : kind === 'summary' ? ['_sum', '_count'] : [];
      for (const s of suffixes) into.declared.add(`${name}${s}`);
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    into.samples.set(m[1]!, [...(into.samples.get(m[1]!) ?? []), labels]);
  }
  return into;
}

/** Series Prometheus makes itself for every target, not exported by our code. */
export const PROMETHEUS_SERIES = new Set(['up']);
/** Labels Prometheus attaches from the scrape target (Compose job, Kubernetes discovery), not exported by our code. */
export const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'container', 'service', 'endpoint']);

/**
 * Label values that only appear when something fails, so a healthy run cannot show them: metric -> label -> values.
 * Callers check these against the code some other way.
 */
export type FailureOnly = Record<string, Record<string, string[]>>;

/**
 * Every metric a query selects is exported by some process; where the metric has samples, every label it matches
 * on or groups by is on them, and every value it matches (= and =~) is among them (unless failure-only).
 */
export function checkAgainstExported(q: Query, exported: Exported, failureOnly: FailureOnly = {}): string[] {
  const parsed = parsePromQL(q);
  const errors = [...parsed.errors];
  const labelsOf = (metric: string) => new Set((exported.samples.get(metric) ?? []).flatMap((s) => Object.keys(s)));
  for (const s of parsed.selectors) {
    if (PROMETHEUS_SERIES.has(s.metric)) continue;
    if (!exported.declared.has(s.metric)) {
      errors.push(`${q.where}: ${s.metric} is not exported by any component`);
      continue;
    }
    const samples = exported.samples.get(s.metric) ?? [];
    if (samples.length === 0) continue;
    for (const m of s.matchers) {
      if (TARGET_LABELS.has(m.label)) continue;
      if (!labelsOf(s.metric).has(m.label)) {
        errors.push(`${q.where}: ${s.metric} has no label ${m.label} (it has ${[...labelsOf(s.metric)].join(', ')})`);
        continue;
      }
      if (m.op !== '=' && m.op !== '=~') continue;
      if (failureOnly[s.metric]?.[m.label]?.includes(m.value)) continue;
      const matches = (v: string | undefined) =>
        v !== undefined && (m.op === '=' ? v === m.value : new RegExp(`^(?:${m.value})$`).test(v));
      if (!samples.some((l) => matches(l[m.label]))) {
        const seen = [...new Set(samples.map((l) => l[m.label]).filter((v) => v !== undefined))];
        errors.push(`${q.where}: no ${s.metric} series has ${m.label}${m.op}"${m.value}" (values: ${seen.join(', ')})`);
      }
    }
  }
  for (const g of parsed.groupings) {
    const withSamples = g.metrics.filter((m) => (exported.samples.get(m) ?? []).length > 0);
    if (withSamples.length === 0) continue;
    for (const l of g.labels) {
      if (TARGET_LABELS.has(l)) continue;
      if (!withSamples.some((m) => labelsOf(m).has(l)))
        errors.push(`${q.where}: groups by ${l}, a label none of ${withSamples.join(', ')} has`);
    }
  }
  return errors;
}
