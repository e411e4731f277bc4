/** A tiny run of `npm run bench` (a few hundred messages per section) so that the benchmark cannot rot. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startProcess } from '../support/process';

describe('npm run bench --smoke', () => {
  it('runs every section and writes a result file with figures next to baselines', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'bench-'));
    try {
      const p = startProcess('bench/run.ts', { LOG_LEVEL: 'warn' }, ['--smoke', `--out=${out}`]);
      const { code } = await p.exited;
      if (code !== 0) throw new Error(`bench failed:\n${p.output().slice(-3000)}`);
      const files = readdirSync(out);
      expect(files).toHaveLength(1);
      const result = JSON.parse(readFileSync(path.join(out, files[0]!), 'utf8'));
      expect(result.smoke).toBe(true);
      expect(Object.keys(result.results).sort()).toEqual(['latency', 'memory', 'peer', 'saga', 'throughput', 'writers']);
      expect(result.results.throughput.classic.relayMsgPerSec).toBeGreaterThan(0);
      expect(result.results.throughput.classic.ceilingMsgPerSec).toBeGreaterThan(0);
      expect(result.results.latency.idleOutboxScansPerSec['relay (CDC)']).toBe(0);
      expect(result.results.latency.idleOutboxScansPerSec['polling every 100 ms']).toBeGreaterThan(0);
      expect(result.results.saga.invariants).toContain('held');
      expect(result.table.length).toBeGreaterThanOrEqual(10);
      for (const row of result.table) expect(row.baseline.length).toBeGreaterThan(0);
      expect(p.output()).toMatch(/\| section +\| what/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
