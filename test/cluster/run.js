#!/usr/bin/env node
/**
 * `npm run test:cluster`: jest over test/cluster (its summary), then one plain line `N passed, N failed`; exits
 * with jest's status.
 */
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const path = require('node:path');

const dir = mkdtempSync(path.join(tmpdir(), 'test-cluster-'));
const out = path.join(dir, 'results.json');
const jest = require.resolve('jest/bin/jest');
const r = spawnSync(
  process.execPath,
  [jest, '-c', 'jest.cluster.config.js', '--runInBand', '--json', `--outputFile=${out}`, ...process.argv.slice(2)],
  {
    cwd: path.resolve(__dirname, '../..'),
    stdio: 'inherit',
  },
);
let status = r.status ?? 1;
try {
  const res = JSON.parse(readFileSync(out, 'utf8'));
  const skipped = res.numPendingTests + res.numTodoTests;
  console.log(`${res.numPassedTests} passed, ${res.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`);
} catch {
  console.log('0 passed, 1 failed (no results: jest did not finish)');
  status = status || 1;
}
rmSync(dir, { recursive: true, force: true });
process.exit(status);
