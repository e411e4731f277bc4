/**
 * npm run observability:rules: write the PrometheusRule for Kubernetes from the alerting rules file.
 * `-- --check` writes nothing and exits 1 when the committed PrometheusRule differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { ALERTS_FILE, PROMETHEUS_RULE_FILE, prometheusRuleOf, readAlertGroups } from './lib/observability';

answerArgs({
  name: 'npm run observability:rules',
  summary: `write ${PROMETHEUS_RULE_FILE} (a PrometheusRule) from ${ALERTS_FILE}`,
  details: ['--check  write nothing; exit 1 when the PrometheusRule differs from what would be generated'],
  accepts: (args) => args.length === 0 || (args.length === 1 && args[0] === '--check'),
});

const file = path.resolve(__dirname, '..', PROMETHEUS_RULE_FILE);
const wanted = prometheusRuleOf(readAlertGroups());
let current: string | undefined;
try {
  current = readFileSync(file, 'utf8');
} catch {
  current = undefined;
}
if (current === wanted) {
  process.stdout.write(`${PROMETHEUS_RULE_FILE} up to date\n`);
} else if (process.argv.includes('--check')) {
  process.stderr.write(`out of date (run npm run observability:rules): ${PROMETHEUS_RULE_FILE}\n`);
  process.exit(1);
} else {
  writeFileSync(file, wanted);
  process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
}
