import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
/** The alerting rules (Prometheus rule file): the one source. */
export const ALERTS_FILE = 'observability/prometheus/alerts.yml';
/** The same rules as a prometheus-operator PrometheusRule, generated from ALERTS_FILE. */
export const PROMETHEUS_RULE_FILE = 'observability/k8s/prometheus-rule.yaml';

export type AlertRule = {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
};
export type RuleGroup = { name: string; rules: AlertRule[] };

export function readAlertGroups(text = readFileSync(path.join(ROOT, ALERTS_FILE), 'utf8')): RuleGroup[] {
  return (YAML.parse(text) as { groups: RuleGroup[] }).groups;
}

/**
 * The PrometheusRule (monitoring.coreos.com/v1) holding the rule file's groups unchanged: its spec.groups has the
 * rule file's shape, so copying is the whole conversion (prometheus-operator.dev, API reference: PrometheusRuleSpec).
 */
export function prometheusRuleOf(groups: RuleGroup[]): string {
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'saga-alerts',
      labels: { 'app.kubernetes.io/name': 'saga-alerts', 'app.kubernetes.io/component': 'monitoring' },
    },
    spec: { groups },
  };
  return `# Generated from ${ALERTS_FILE} by npm run observability:rules: edit that file, then run it.\n${YAML.stringify(rule, { lineWidth: 0 })}`;
}
