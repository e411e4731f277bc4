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
      // The run says which code ran and how it was started, so that it can be run again.
      expect(result.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(result.args).toEqual(['--smoke', `--out=${out}`]);
      expect(Object.keys(result.results).sort()).toEqual([
        'latency',
        'memory',
        'peer',
        'plans',
        'saga',
        'tail',
        'throughput',
        'writers',
      ]);
      // The plan-cache comparison: each table size measured on both connections, the last one after ANALYZE.
      const plans = result.results.plans as {
        orders: number;
        analyzed: boolean;
        customMs: number;
        genericMs: number;
        generic: { genericPlans: number };
      }[];
      expect(plans.map((r) => r.analyzed)).toEqual([false, false, true]);
      for (const r of plans) expect(r.customMs > 0 && r.genericMs > 0 && r.orders >= 500).toBe(true);
      expect(plans[0]!.generic.genericPlans).toBeGreaterThan(0);
      // The crash tail: every row arrived after the SIGKILL and restart (the section waits for all), duplicates counted.
      const tails = Object.values(result.results.tail) as { window: number; rows: number; duplicates: number }[];
      expect(tails.map((t) => t.window).sort((a, b) => b - a)).toEqual([1000, 50]);
      for (const t of tails) expect(Number.isInteger(t.duplicates) && t.rows === 400).toBe(true);
      expect(result.results.throughput.classic.relayMsgPerSec).toBeGreaterThan(0);
      expect(result.results.throughput.classic.ceilingMsgPerSec).toBeGreaterThan(0);
      // Where the drains' CPU went: the relay, its walsender and RabbitMQ, next to the plain publisher and RabbitMQ.
      type DrainCpu = { client: number; walsender: number; broker: number; publishing: number };
      const cpu = result.results.throughput.classic.cpuMsPer1000 as Record<'relay' | 'ceiling', DrainCpu>;
      for (const side of [cpu.relay, cpu.ceiling])
        for (const k of ['client', 'walsender', 'broker'] as const) expect(side[k]).toBeGreaterThanOrEqual(0);
      // The plain publisher's own CPU is read in microseconds: a run that publishes anything has some.
      expect(cpu.ceiling.client).toBeGreaterThan(0);
      expect(cpu.relay.publishing).toBeGreaterThanOrEqual(cpu.relay.client);
      expect(result.results.latency.idleOutboxScansPerSec['relay (CDC)']).toBe(0);
      expect(result.results.latency.idleOutboxScansPerSec['polling every 100 ms']).toBeGreaterThan(0);
      // The polling baseline publishes what it is offered (it reads and deletes the outbox rows itself).
      const polled = result.results.latency['200']['polling every 100 ms'];
      expect(polled.committed).toBeGreaterThan(0);
      expect(polled.delivered).toBe(polled.committed);
      expect(result.results.saga.invariants).toContain('held');
      // The saga figures are there and make sense; no timing is asserted (a smoke run is too short).
      const saga = result.results.saga;
      expect(saga.commitCeilingTps).toBeGreaterThan(0);
      // The off-path components ran at the default lower priority, and the result says so.
      expect(saga.offPathNice).toBe(10);
      const closed = Object.values(saga.closed) as {
        orders: number;
        ratioToCommitCeiling: number;
        cpuMsPerOrder: Record<string, number>;
        statementsPerOrder: Record<string, number>;
      }[];
      expect(closed.length).toBeGreaterThan(0);
      for (const c of closed) {
        expect(c.orders).toBeGreaterThan(0);
        expect(c.ratioToCommitCeiling).toBeGreaterThan(0);
        for (const k of [
          'order',
          'inventory',
          'payment',
          'relay',
          'postgres',
          'rabbitmq',
          'stack',
          'benchClient',
          'machine',
        ])
          expect(Number.isFinite(c.cpuMsPerOrder[k])).toBe(true);
        expect(c.cpuMsPerOrder.machine).toBeGreaterThan(0);
        expect(c.cpuMsPerOrder.order).toBeGreaterThan(0);
        for (const s of ['order', 'inventory', 'payment']) expect(c.statementsPerOrder[s]).toBeGreaterThan(0);
        expect(c.statementsPerOrder.total).toBeGreaterThan(0);
      }
      // The same saga again on one PostgreSQL server per service (three started by the bench), as compose and k8s deploy it.
      expect(saga.servers).toBe('shared');
      const perService = saga.byServers['per-service'];
      expect(perService.invariants).toContain('held');
      expect(perService.commitCeilingTps).toBeGreaterThan(0);
      for (const c of Object.values(perService.closed) as { orders: number; cpuMsPerOrder: Record<string, number> }[])
        expect(c.orders > 0 && (c.cpuMsPerOrder.postgres ?? 0) > 0).toBe(true);
      expect(result.table.some((r: { section: string }) => r.section === '4. saga (per-service PostgreSQL)')).toBe(
        true,
      );
      expect(saga.open.scheduled).toBeGreaterThan(0);
      expect(saga.open.final).toBeGreaterThan(0);
      expect(Number.isFinite(saga.open.placeToFinalMs.p99)).toBe(true);
      expect(result.table.filter((r: { section: string }) => r.section === '4. saga').length).toBeGreaterThanOrEqual(5);
      expect(result.table.length).toBeGreaterThanOrEqual(10);
      for (const row of result.table) expect(row.baseline.length).toBeGreaterThan(0);
      expect(p.output()).toMatch(/\| section +\| what/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 480_000); // two to three minutes alone: every section starts processes and builds the bundle, the saga runs on two topologies
});
