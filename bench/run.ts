/**
 * npm run bench [-- options]: `npm run bench -- --help` lists them; bench/README.md says what each section measures.
 * In the saga section every component runs in a session of its own, so Linux's autogroup scheduling gives each
 * process a CPU share of its own, as a container's cgroup does (otherwise all of them would share the bench's one
 * share, while each PostgreSQL backend has its own). --off-path-nice=N (10 by default): the relay's, inventory's and
 * payment's groups get the CFS weight of nice N (110 at 10, against 1024), as docker-compose.yml weights those
 * containers (cpu_shares 110), so that under contention the POST path (order service, PostgreSQL, RabbitMQ) runs
 * first.
 * Every figure is measured in this run, on this machine, next to its baseline (ratio printed). A table on the
 * terminal and a JSON file under bench/results/ (or --out=DIR).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { assertEventTopology } from '@saga/common/messaging/topology';
import { ADMIN_URL, createTestEnv, type TestEnv } from '../test/support/env';
import { createServers, settingsOf } from '../test/support/pg-cluster';
import removeLeftovers from '../test/support/global-setup';
import { metricValue } from '../test/support/metrics';
import { killAll, runtime, startProcess, type Running } from '../test/support/process';
import { bundled } from '../test/support/stack';
import { build as esbuild } from 'esbuild';
import { waitUntil } from '../test/support/wait';
import { randomUUID } from 'node:crypto';
import { toAmqpMessage } from '../cdc-relay/src/mapping';
import { brokerUser } from '@saga/common/messaging/publisher-trust';
import {
  arrivals,
  closedLoopWriters,
  describeSpread,
  HOT_AGGREGATES,
  insertBacklog,
  ORDER_AGGREGATES,
  type AggregateSpread,
  now,
  outboxScans,
  pacedWriter,
  payload,
  rssMiB,
  sleep,
  sql,
  summary,
} from './lib';
import { peerBacklog, peerLatency } from './peer';
import { busiestByComm, procTicks, tickMs } from './proc-cpu';
import { measurePlans } from './plans';
import { parseOptions, SECTIONS, UsageError, usage, type Section } from './options';
import { referenceFileName, referenceOf, resultFileName, toJson, type Row, type Run } from './result-file';
import { measureSaga, type OpenLoop, type SagaResult } from './saga';

const args = process.argv.slice(2);
const OPTS = (() => {
  try {
    return parseOptions(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message} (npm run bench -- --help lists the options)\n`);
    process.exit(2);
  }
})();
if (OPTS.help) {
  process.stdout.write(usage());
  process.exit(0);
}
const SMOKE = OPTS.smoke;
const ONLY = OPTS.only;
const BASELINE_REF = OPTS.baselineRef;
const NODE = OPTS.node;
const BASELINE_NODE = OPTS.baselineNode;
const OFF_PATH_NICE = OPTS.offPathNice;
const BASELINE_OFF_PATH_NICE = OPTS.baselineOffPathNice;
const niceLabel = (n: number) =>
  n ? ` (relay, inventory, payment weighted as nice ${n})` : ' (every component at the same weight)';
/** The commit a ref names, so that a result file says which code its baseline ran ('HEAD' moves). */
const gitCommit = (ref: string) =>
  execFileSync('git', ['rev-parse', `${ref}^{commit}`], {
    cwd: path.resolve(__dirname, '..'),
    encoding: 'utf8',
  }).trim();
/** `v24.11.1` of a node binary; fails the run early on a path that is not one. */
const nodeVersion = (bin: string) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
if (NODE) runtime.node = NODE;
const STACK_NODE = nodeVersion(runtime.node);
const BASELINE_NODE_VERSION = BASELINE_NODE ? nodeVersion(BASELINE_NODE) : undefined;
/** Taken at the start: 'HEAD' may move while the bench runs. */
const COMMIT = gitCommit('HEAD');
const BASELINE_COMMIT = BASELINE_REF ? gitCommit(BASELINE_REF) : COMMIT;
/** What the saga baseline is: a commit, another runtime, or both. */
const BASELINE_LABEL =
  [
    BASELINE_REF,
    BASELINE_NODE_VERSION && `node ${BASELINE_NODE_VERSION}`,
    BASELINE_OFF_PATH_NICE !== OFF_PATH_NICE && `off-path nice ${BASELINE_OFF_PATH_NICE}`,
  ]
    .filter(Boolean)
    .join(', ') || undefined;
/**
 * --baseline-outbox-trigger: the baseline env also gets the statement trigger that deleted each outbox row in the
 * statement that inserted it (before outbox retention), so a baseline ref from that time runs as it did then.
 */
const BASELINE_OUTBOX_TRIGGER = OPTS.baselineOutboxTrigger;
const OUT = OPTS.out ?? path.resolve(__dirname, 'results');
const P = SMOKE
  ? {
      backlog: 300,
      bytes: 1000,
      writeMs: 800,
      conns: [1, 8],
      rates: [200],
      latencyMs: 1000,
      idleMs: 2500,
      sagaMs: 1500,
      sagaConc: [4],
      planSizes: [500, 2000],
      planBatches: 4,
      sagaOpenRates: [25, 50],
      sagaOpenWaitMs: 5000,
      sagaOverloadFactor: 2,
      ceilingSecs: 1,
      memory: [500, 1000],
      repeats: 1,
      peerBacklog: 300,
      warmupMs: 300,
      tailRows: 400,
      tailWindows: [1000, 50],
    }
  : {
      backlog: OPTS.backlog ?? 50_000,
      bytes: 1000,
      writeMs: 5000,
      conns: [1, 8, 32],
      rates: [500, 2000],
      latencyMs: 5000,
      idleMs: 5000,
      sagaMs: 10_000,
      sagaConc: [16, 64],
      planSizes: [6500, 50_000, 200_000],
      planBatches: 40,
      sagaOpenRates: [100, 200],
      sagaOpenWaitMs: 30_000,
      sagaOverloadFactor: 2,
      ceilingSecs: 10,
      memory: [100_000, 1_000_000],
      repeats: 3,
      peerBacklog: 5000,
      warmupMs: 1500,
      tailRows: 20_000,
      tailWindows: [10_000, 5000, 2000, 500],
    };
const want = (s: Section) => !ONLY || ONLY.includes(s);

const rows: Row[] = [];
const results: Record<string, unknown> = {};
const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-';
const ratio = (a: number, b: number) => (b > 0 ? `${fmt((a / b) * 100, 0)}%` : '-');
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

let env: TestEnv;
const relayEnv = (sources: ServiceName[], prefix: string, extra: Record<string, string> = {}) => ({
  ...env.env,
  RELAY_SOURCES: sources.map((s) => `${s}=${env.relayUrl(s)}`).join(','),
  RELAY_SLOT_PREFIX: prefix,
  RELAY_PORT: '18400',
  LOG_LEVEL: 'warn',
  ...extra,
});

async function startRelay(
  sources: ServiceName[],
  prefix: string,
  extra: Record<string, string> = {},
): Promise<Running> {
  // BENCH_RELAY_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/relay-prof") profiles the relay under the bench's load.
  const flags = process.env.BENCH_RELAY_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const r = startProcess('dist/saga.js', { ...relayEnv(sources, prefix, extra), LOG_LEVEL: 'info' }, ['relay'], flags);
  // Checked every 10 ms (the bench's own log array, nothing asked of the relay): a drain's CPU is read from here.
  await waitUntil(() => sources.every((s) => r.logs.some((l) => l.msg === 'streaming' && l.source === s)), {
    timeoutMs: 60_000,
    intervalMs: 10,
    message: 'relay streaming',
  });
  return r;
}
// This one counter alone (`?name=`): a full scrape costs the relay 2-3 ms, this about 0.6 ms.
const published = () => metricValue('http://127.0.0.1:18400', 'relay_messages_published_total', {}, { only: true });
/** When the relay's broker last confirmed a message of `source`, in ms since the epoch (the relay's clock). */
const lastPublishedAt = async (source: ServiceName) =>
  1000 *
  (await metricValue('http://127.0.0.1:18400', 'relay_last_published_timestamp_seconds', { source }, { only: true }));
/**
 * When the first of `sources` started streaming (the relay's clock): a drain is timed from it. A source that started
 * twice (a session restarted mid-drain, sending rows again) makes the drain no measure of the relay's pace.
 */
function firstStreamingAt(r: Running, sources: ServiceName[]): number {
  const starts = sources.map((s) => r.logs.filter((l) => l.msg === 'streaming' && l.source === s));
  if (starts.some((x) => x.length !== 1)) throw new Error('a source started streaming more than once during a drain');
  return Math.min(...starts.map((x) => Date.parse(String(x[0]!.time))));
}

async function createSlots(sources: ServiceName[], prefix: string) {
  for (const s of sources)
    await sql(env.adminUrl(s), "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`${prefix}_${s}`]);
}

/** A queue of the given type bound to every event, purged; `drop` keeps only a few messages (memory runs). */
async function benchQueue(type: 'classic' | 'quorum', drop = false) {
  const conn = await amqp.connect(env.rabbitUrl);
  const ch = await conn.createChannel();
  await assertEventTopology(ch, env.exchange);
  const name = `bench.${type}${drop ? '.drop' : ''}`;
  await ch.assertQueue(name, {
    durable: true,
    arguments: { 'x-queue-type': type, ...(drop ? { 'x-max-length': 1000, 'x-overflow': 'drop-head' } : {}) },
  });
  await ch.bindQueue(name, env.exchange, '#');
  await ch.purgeQueue(name);
  return {
    async remove() {
      await ch.deleteQueue(name);
      await conn.close();
    },
  };
}

/**
 * The broker's ceiling: a plain pipelined confirm-channel publisher sending the very messages the relay sends
 * (toAmqpMessage of the same rows: size, properties, headers, mandatory), to the same exchange and queue.
 */
async function ceiling(n: number, bytes: number): Promise<{ rate: number; cpu: DrainCpu }> {
  const conn = await amqp.connect(env.rabbitUrl);
  const ch = await conn.createConfirmChannel();
  const body = JSON.stringify(payload(bytes));
  const headers = JSON.stringify({ correlationId: 'bench', causationId: null });
  const messages = Array.from({ length: Math.min(n, 1000) }, (_, i) =>
    toAmqpMessage(
      {
        id: randomUUID(),
        aggregatetype: 'bench',
        aggregateid: `agg-${i % 64}`,
        type: 'Tested',
        payload: body,
        headers,
        created_at: new Date().toISOString(),
      },
      'order',
      'outbox',
    ),
  );
  // The relay signs every message with its broker user (user-id, which the broker checks): so does this publisher,
  // with the options built once per message here rather than on every publish.
  const userId = brokerUser(env.rabbitUrl);
  const options = messages.map((m) => (m.ok ? { ...m.options, userId } : undefined));
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const broker0 = procTicks(brokerPid(), true);
  const own0 = process.cpuUsage();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    while (outstanding >= 10_000) await new Promise<void>((r) => (wake = r));
    outstanding++;
    const m = messages[i % messages.length]!;
    if (!m.ok) throw new Error(m.reason);
    const ok = ch.publish(env.exchange, m.routingKey, m.content, options[i % messages.length], () => {
      outstanding--;
      wake?.();
    });
    if (!ok) await new Promise((r) => ch.once('drain', r));
  }
  await ch.waitForConfirms();
  const rate = n / ((now() - t0) / 1000);
  const own = process.cpuUsage(own0);
  const cpu = {
    client: (own.user + own.system) / 1000,
    walsender: 0,
    broker: (procTicks(brokerPid(), true) - broker0) * tickMs,
  };
  await conn.close();
  return { rate, cpu };
}

/**
 * CPU time (ms) one drain took: the publishing client (the relay, or the bench's own process for the plain
 * publisher), the walsender that streamed the rows to it (none for the plain publisher), and RabbitMQ.
 */
type DrainCpu = { client: number; walsender: number; broker: number };

let rabbitPid: number | undefined;
/** The RabbitMQ server's process (see busiestByComm), found once and again if it is gone. */
function brokerPid(): number {
  if (rabbitPid !== undefined && procTicks(rabbitPid) > 0) return rabbitPid;
  rabbitPid = busiestByComm('beam.smp');
  if (rabbitPid === undefined) throw new Error('no RabbitMQ server process (beam.smp) on this machine');
  return rabbitPid;
}

/** The walsender streaming `slot`, if one does. */
async function walsenderPid(source: ServiceName, slot: string): Promise<number | undefined> {
  const { rows } = await sql(env.adminUrl(source), 'SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ]);
  return rows[0]?.active_pid ?? undefined;
}

/**
 * Rows committed while the relay is stopped, spread over aggregates as `spread` says; then the time for the relay to
 * publish them and have all confirmed. `extra`: the relay's environment on top of the bench's.
 */
async function relayBacklog(
  sources: ServiceName[],
  n: number,
  bytes: number,
  tag: string,
  spread: AggregateSpread = ORDER_AGGREGATES,
  extra: Record<string, string> = {},
) {
  const prefix = `${env.id}_${tag}`;
  await createSlots(sources, prefix);
  const perSource = Math.round(n / sources.length);
  for (const s of sources) await insertBacklog(env.serviceUrl(s), perSource, bytes, 500, spread);
  const total = perSource * sources.length;
  // CPU of the drain: RabbitMQ's from before the relay connects, the relay's from the moment it streams (its start-up
  // is not the drain's), each walsender's whole life (one per relay connection, its start-up a few ms).
  const broker0 = procTicks(brokerPid(), true);
  const relay = await startRelay(sources, prefix, extra);
  const relay0 = procTicks(relay.pid);
  const walsenders = await Promise.all(sources.map((s) => walsenderPid(s, `${prefix}_${s}`)));
  if (walsenders.some((pid) => pid === undefined)) log(`${tag}: a walsender was not found; its CPU is left out`);
  // The end is the relay's own time of its last confirm (relay_last_published_timestamp_seconds, exact to the ms),
  // read once its counter says every row is stored: the counter is polled every 100 ms, since each poll costs the
  // relay about 0.6 ms of CPU (polling every 5 ms near the end, to time the end by the poll, cost it about 3% of its
  // CPU in a drain of 2-3 s, at the moment the broker finishes the backlog).
  await waitUntil(async () => (await published()) >= total, {
    timeoutMs: 600_000,
    intervalMs: 100,
    message: 'backlog published',
  });
  // Up to one poll (100 ms) after the last confirm, when all three are idle.
  const cpu: DrainCpu = {
    client: (procTicks(relay.pid) - relay0) * tickMs,
    walsender: walsenders.reduce<number>((sum, pid) => sum + (pid === undefined ? 0 : procTicks(pid)), 0) * tickMs,
    broker: (procTicks(brokerPid(), true) - broker0) * tickMs,
  };
  const t0 = firstStreamingAt(relay, sources);
  const ends = await Promise.all(sources.map((source) => lastPublishedAt(source)));
  if (ends.some((t) => !(t > t0))) throw new Error('the relay did not report the time of its last confirm');
  const rate = total / ((Math.max(...ends) - t0) / 1000);
  await relay.kill('SIGTERM');
  await dropSlots(sources, prefix);
  return { rate, cpu };
}

async function dropSlots(sources: ServiceName[], prefix: string) {
  for (const s of sources) await sql(env.adminUrl(s), 'SELECT pg_drop_replication_slot($1)', [`${prefix}_${s}`]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The relay's variants in the throughput section: the backlog as orders make it (one aggregate per 3 rows) with
 * per-aggregate order, the default; the same without it; and hot aggregates (64 over the whole backlog) with it, the
 * worst case, reported so that it stays visible.
 */
const THROUGHPUT_VARIANTS = [
  { key: 'relay', tag: 'on', spread: ORDER_AGGREGATES, extra: {}, label: 'order per aggregate' },
  {
    key: 'orderOff',
    tag: 'off',
    spread: ORDER_AGGREGATES,
    extra: { RELAY_ORDER_PER_AGGREGATE: 'false' },
    label: 'RELAY_ORDER_PER_AGGREGATE=false',
  },
  { key: 'hotAggregates', tag: 'hot', spread: HOT_AGGREGATES, extra: {}, label: 'order per aggregate' },
] as const;

async function sectionThroughput() {
  const out: Record<string, unknown> = {};
  // Alternating runs, median of each: single runs on a 2-core machine vary by tens of percent.
  for (const type of ['classic', 'quorum'] as const) {
    const ceilings: number[] = [];
    const runs: Record<string, number[]> = Object.fromEntries(THROUGHPUT_VARIANTS.map((v) => [v.key, []]));
    const cpu: { ceiling: DrainCpu[]; relay: DrainCpu[] } = { ceiling: [], relay: [] };
    for (let r = 0; r < P.repeats; r++) {
      const q = await benchQueue(type);
      const c = await ceiling(P.backlog, P.bytes);
      ceilings.push(c.rate);
      cpu.ceiling.push(c.cpu);
      await q.remove();
      for (const v of THROUGHPUT_VARIANTS) {
        const q2 = await benchQueue(type);
        const d = await relayBacklog(['order'], P.backlog, P.bytes, `tp_${type}${r}_${v.tag}`, v.spread, v.extra);
        runs[v.key]!.push(d.rate);
        if (v.key === 'relay') cpu.relay.push(d.cpu);
        await q2.remove();
      }
    }
    const ceil = median(ceilings);
    const result: Record<string, unknown> = { ceilingMsgPerSec: ceil, runs: { ceilings, ...runs } };
    for (const v of THROUGHPUT_VARIANTS) {
      const relay = median(runs[v.key]!);
      const fig = { relayMsgPerSec: relay, ratio: relay / ceil, aggregates: describeSpread(v.spread), ...v.extra };
      // The default variant's figures stay at the top level, where earlier result files have them.
      if (v.key === 'relay') Object.assign(result, fig);
      else result[v.key] = fig;
      rows.push({
        section: '1. backlog',
        what: `relay, ${type} queue, ${fmt(P.backlog)} x ${P.bytes} B, ${describeSpread(v.spread)}, ${v.label} (median of ${P.repeats})`,
        figure: `${fmt(relay)} msg/s`,
        baseline: `${fmt(ceil)} msg/s plain confirm publisher`,
        ratio: ratio(relay, ceil),
      });
    }
    // Where the CPU of the default variant's drains went, next to the plain publisher's (medians, per 1,000 messages):
    // on two cores, what the publishing side takes, the broker does not get.
    const per1000 = (xs: DrainCpu[], of: (x: DrainCpu) => number) => (median(xs.map(of)) * 1000) / P.backlog;
    const cpuOf = (xs: DrainCpu[]) => ({
      client: per1000(xs, (x) => x.client),
      walsender: per1000(xs, (x) => x.walsender),
      broker: per1000(xs, (x) => x.broker),
      /** The median drain's client and walsender together (not the sum of the two medians). */
      publishing: per1000(xs, (x) => x.client + x.walsender),
    });
    const relayCpu = cpuOf(cpu.relay);
    const ceilingCpu = cpuOf(cpu.ceiling);
    result.cpuMsPer1000 = { relay: relayCpu, ceiling: ceilingCpu, runs: cpu };
    rows.push({
      section: '1. backlog',
      what: `CPU per 1,000 messages, ${type}, one aggregate per 3 rows: relay ${fmt(relayCpu.client)} + its walsender ${fmt(relayCpu.walsender)} ms (RabbitMQ ${fmt(relayCpu.broker)} ms)`,
      figure: `${fmt(relayCpu.publishing)} ms`,
      baseline: `${fmt(ceilingCpu.client)} ms plain publisher (RabbitMQ ${fmt(ceilingCpu.broker)} ms)`,
      ratio: ratio(relayCpu.publishing, ceilingCpu.client),
    });
    out[type] = result;
    log(
      `throughput ${type}: ceiling ${ceilings.map((x) => fmt(x)).join(', ')}; ${THROUGHPUT_VARIANTS.map((v) => `${v.key} ${runs[v.key]!.map((x) => fmt(x)).join(', ')}`).join('; ')}`,
    );
  }
  // Scale: the same backlog from three databases at once.
  const q = await benchQueue('classic');
  const three = (await relayBacklog([...SERVICES], P.backlog, P.bytes, 'tp_three')).rate;
  await q.remove();
  const one = (out.classic as { relayMsgPerSec: number }).relayMsgPerSec;
  out.threeSources = { relayMsgPerSec: three, ratioToOneSource: three / one };
  rows.push({
    section: '6. scale',
    what: `relay, 3 source databases, classic`,
    figure: `${fmt(three)} msg/s`,
    baseline: `${fmt(one)} msg/s with 1 source`,
    ratio: ratio(three, one),
  });
  results.throughput = out;
}

async function sectionWriters() {
  const out: Record<string, unknown> = {};
  const q = await benchQueue('classic');
  const prefix = `${env.id}_wr`;
  await createSlots(['order'], prefix);
  for (const c of P.conns) {
    // Baseline on a database of the same schema with no slot: its rows must not reach the relay's stream.
    const dbOnly = await closedLoopWriters(env.serviceUrl('inventory'), c, P.writeMs, P.bytes);
    const relay = await startRelay(['order'], prefix);
    const before = await published();
    const t0 = now();
    const committed = await closedLoopWriters(env.serviceUrl('order'), c, P.writeMs, P.bytes);
    const secs = (now() - t0) / 1000;
    const pub = (await published()) - before;
    const backlog = committed - pub;
    const drainStart = now();
    await waitUntil(async () => (await published()) - before >= committed, { timeoutMs: 300_000, intervalMs: 20 });
    const drainMs = now() - drainStart;
    await relay.kill('SIGTERM');
    out[`${c}`] = {
      dbOnlyCommitsPerSec: dbOnly / (P.writeMs / 1000),
      committedPerSec: committed / secs,
      publishedPerSec: pub / secs,
      backlogAtEnd: backlog,
      drainMs,
    };
    rows.push({
      section: '2. with writers',
      what: `${c} writer connection(s): committed / published`,
      figure: `${fmt(committed / secs)} / ${fmt(pub / secs)} rows/s, backlog ${fmt(Math.max(0, backlog))} (drained in ${fmt(drainMs)} ms)`,
      baseline: `${fmt(dbOnly / (P.writeMs / 1000))} commits/s, relay stopped`,
      ratio: ratio(committed / secs, dbOnly / (P.writeMs / 1000)),
    });
    log(`writers ${c}: ${fmt(committed / secs)} committed/s, ${fmt(pub / secs)} published/s`);
  }
  await q.remove();
  await dropSlots(['order'], prefix);
  results.writers = out;
}

async function pollerProcess(intervalMs: number): Promise<Running> {
  const p = startProcess('dist/bench/polling-publisher.js', {
    DATABASE_URL: env.serviceUrl('order'),
    RABBITMQ_URL: env.rabbitUrl,
    EVENTS_EXCHANGE: env.exchange,
    POLL_INTERVAL_MS: String(intervalMs),
  });
  await waitUntil(() => p.logs.length > 0, { timeoutMs: 30_000, message: 'poller running' });
  return p;
}

async function sectionLatency() {
  const out: Record<string, unknown> = {};
  const prefix = `${env.id}_lat`;
  await createSlots(['order'], prefix);
  const variants: { name: string; start: () => Promise<Running> }[] = [
    { name: 'relay (CDC)', start: () => startRelay(['order'], prefix) },
    { name: 'polling every 100 ms', start: () => pollerProcess(100) },
    { name: 'polling every 1 s', start: () => pollerProcess(1000) },
  ];
  if (want('peer')) variants.push({ name: 'pg-transactional-outbox', start: async () => peerLatency.start(env) });
  for (const rate of P.rates) {
    const byVariant: Record<string, unknown> = {};
    for (const v of variants) {
      if (v.name !== 'pg-transactional-outbox') await sql(env.adminUrl('order'), 'TRUNCATE outbox');
      const sink = await arrivals(env.rabbitUrl, env.exchange, 'bench.latency');
      const proc = await v.start();
      // Warm-up at the same rate, not measured: connections opened, code paths compiled, queues settled.
      const warm =
        v.name === 'pg-transactional-outbox'
          ? await peerLatency.write(env, rate, P.warmupMs, P.bytes)
          : await pacedWriter(env.serviceUrl('order'), rate, P.warmupMs, P.bytes);
      await waitUntil(() => [...warm.keys()].every((id) => sink.at.has(id)), {
        timeoutMs: 30_000,
        intervalMs: 20,
      }).catch(() => undefined);
      const committed =
        v.name === 'pg-transactional-outbox'
          ? await peerLatency.write(env, rate, P.latencyMs, P.bytes)
          : await pacedWriter(env.serviceUrl('order'), rate, P.latencyMs, P.bytes);
      // A publisher that cannot keep up with the offered load never catches up: stop waiting and say so.
      const keptUp = await waitUntil(() => [...committed.keys()].every((id) => sink.at.has(id)), {
        timeoutMs: Math.max(15_000, 3 * P.latencyMs),
        intervalMs: 20,
      }).then(
        () => true,
        () => false,
      );
      const delivered = [...committed].filter(([id]) => sink.at.has(id));
      const lat = {
        ...summary(delivered.map(([id, t]) => Math.max(0, sink.at.get(id)! - t))),
        keptUp,
        delivered: delivered.length,
        committed: committed.size,
      };
      await proc.kill('SIGTERM');
      await sink.close();
      byVariant[v.name] = lat;
      log(
        `latency ${rate}/s ${v.name}: p50 ${fmt(lat.p50, 1)} p99 ${fmt(lat.p99, 1)} max ${fmt(lat.max, 1)} ms${keptUp ? '' : ` (did not keep up: ${delivered.length} of ${committed.size} delivered)`}`,
      );
    }
    type Lat = ReturnType<typeof summary> & { keptUp: boolean; delivered: number; committed: number };
    const relay = byVariant['relay (CDC)'] as Lat;
    const show = (l: Lat) =>
      `${fmt(l.p50, 1)} / ${fmt(l.p99, 1)} / ${fmt(l.max, 1)} ms${l.keptUp ? '' : ` (fell behind: ${fmt(l.delivered)} of ${fmt(l.committed)} delivered)`}`;
    for (const [name, l] of Object.entries(byVariant) as [string, Lat][]) {
      if (name === 'relay (CDC)') continue;
      rows.push({
        section: '3. latency',
        what: `${fmt(rate)} rows/s, commit -> consumer, p50/p99/max`,
        figure: `relay ${show(relay)}`,
        baseline: `${name} ${show(l)}`,
        ratio: ratio(relay.p99, l.p99),
      });
    }
    out[`${rate}`] = byVariant;
  }
  // Database load on an idle system: scans of the outbox table per second (server statistics).
  const idle: Record<string, number> = {};
  for (const v of variants.slice(0, 3)) {
    const proc = await v.start();
    await sleep(1500); // stats are flushed by backends at most once a second
    const before = await outboxScans(env.adminUrl('order'));
    await sleep(P.idleMs);
    const after = await outboxScans(env.adminUrl('order'));
    await proc.kill('SIGTERM');
    idle[v.name] = (after - before) / (P.idleMs / 1000);
  }
  out.idleOutboxScansPerSec = idle;
  await dropSlots(['order'], prefix);
  rows.push({
    section: '3. idle load',
    what: 'outbox scans/s with nothing to publish',
    figure: `relay ${fmt(idle['relay (CDC)']!, 1)}`,
    baseline: `polling 100 ms ${fmt(idle['polling every 100 ms']!, 1)}, 1 s ${fmt(idle['polling every 1 s']!, 1)}`,
    ratio: '-',
  });
  results.latency = out;
}

/** The saga rows of one bundle; `tag` names the bundle in the row labels. */
function sagaRows(r: SagaResult, section: string) {
  const ms = (n: number) => fmt(n, 1);
  rows.push({
    section,
    what: 'PostgreSQL single-row INSERT+COMMIT, 16 clients, stack up and idle (pgbench)',
    figure: `${fmt(r.commitCeilingTps)} commits/s`,
    baseline: '-',
    ratio: '-',
  });
  const idle = r.idleCpuMsPerSec;
  if (idle)
    rows.push({
      section,
      what: 'stack up and idle, 10 s: CPU ms per second (/proc)',
      figure: `stack ${ms(idle.stack)}: order ${ms(idle.order)}, inventory ${ms(idle.inventory)}, payment ${ms(idle.payment)}, relay ${ms(idle.relay)}, postgres ${ms(idle.postgres)}, rabbitmq ${ms(idle.rabbitmq)}`,
      baseline: `machine ${ms(idle.machine)} (load generator idle too)`,
      ratio: '-',
    });
  for (const c of Object.values(r.closed)) {
    rows.push({
      section,
      what: `closed loop, ${c.concurrency} connections, ${P.sagaMs / 1000} s: placed / final / confirmed`,
      figure: `${fmt(c.placedPerSec)} / ${fmt(c.finalPerSec)} / ${fmt(c.confirmedPerSec)} orders/s (${fmt(c.orders)} orders${c.refused ? `, ${fmt(c.refused)} POSTs refused 503` : ''}); POST p50 ${ms(c.postMs.p50)} p99 ${ms(c.postMs.p99)} ms; to final p50 ${ms(c.placeToFinalMs.p50)} p99 ${ms(c.placeToFinalMs.p99)} ms`,
      baseline: `orders/s x 6 / ${fmt(r.commitCeilingTps)} commits/s (target >= 0.3)`,
      ratio: fmt(c.ratioToCommitCeiling, 3),
    });
    const cpu = c.cpuMsPerOrder;
    rows.push({
      section,
      what: `CPU ms per order at ${c.concurrency} connections (/proc)`,
      figure: `machine ${ms(cpu.machine)} (target <= 4): order ${ms(cpu.order)}, inventory ${ms(cpu.inventory)}, payment ${ms(cpu.payment)}, relay ${ms(cpu.relay)}, postgres ${ms(cpu.postgres)}, rabbitmq ${ms(cpu.rabbitmq)}; stack ${ms(cpu.stack)}`,
      baseline: `load generator ${ms(cpu.benchClient)} (in machine)`,
      ratio: '-',
    });
    const st = c.statementsPerOrder;
    rows.push({
      section,
      what: `statements per order at ${c.concurrency} connections (db_statements_total)`,
      figure: Number.isFinite(st.total)
        ? `total ${ms(st.total)} (target <= 12): order ${ms(st.order)}, inventory ${ms(st.inventory)}, payment ${ms(st.payment)}`
        : 'not counted by this bundle',
      baseline: '-',
      ratio: '-',
    });
  }
  for (const o of r.opens) {
    const cpu = o.cpuMsPerOrder;
    rows.push({
      section,
      what: `open loop, ${fmt(o.ratePerSec)} orders/s for ${P.sagaMs / 1000} s, from the scheduled send`,
      figure:
        `POST p50 ${ms(o.postMs.p50)} p99 ${ms(o.postMs.p99)} ms (target < 30); to final p50 ${ms(o.placeToFinalMs.p50)} p99 ${ms(o.placeToFinalMs.p99)} ms (target < 300)` +
        `; machine ${fmt(o.machineBusy * 100)}% busy, CPU ms per order: machine ${ms(cpu.machine)}, stack ${ms(cpu.stack)} (order ${ms(cpu.order)}, inventory ${ms(cpu.inventory)}, payment ${ms(cpu.payment)}, relay ${ms(cpu.relay)}, postgres ${ms(cpu.postgres)}, rabbitmq ${ms(cpu.rabbitmq)})`,
      baseline: o.keptUp
        ? `kept up: ${fmt(o.final)} of ${fmt(o.scheduled)} final, send lag max ${ms(o.sendLagMs.max)} ms`
        : `FELL BEHIND: ${fmt(o.final)} of ${fmt(o.scheduled)} final, send lag max ${ms(o.sendLagMs.max)} ms`,
      ratio: '-',
    });
  }
  if (r.overload) overloadRow(r.overload, section);
}

/** The overload loop's row: what was refused and how, and how the accepted orders fared. */
function overloadRow(o: OpenLoop, section: string) {
  const ms = (n: number) => fmt(n, 1);
  const accepted = o.statusCounts['202'] ?? 0;
  const refused = o.statusCounts['503'] ?? 0;
  const other = Object.entries(o.statusCounts)
    .filter(([k]) => k !== '202' && k !== '503')
    .map(([k, v]) => `${k}: ${fmt(v)}`)
    .join(', ');
  rows.push({
    section,
    what: `overload: open loop at ${fmt(o.ratePerSec)} orders/s (${OPTS.overloadRate === undefined ? '2x the best closed loop' : '--overload-rate'}) for ${P.sagaMs / 1000} s`,
    figure:
      `accepted ${fmt(accepted)}, refused 503 ${fmt(refused)} (${fmt(o.retryAfter503)} with Retry-After)${other ? `, other ${other}` : ''}` +
      `; accepted to final p50 ${ms(o.placeToFinalMs.p50)} p99 ${ms(o.placeToFinalMs.p99)} ms (target < 2000); POST p99 ${ms(o.postMs.p99)} ms`,
    baseline: `${fmt(o.final)} of ${fmt(accepted)} accepted final${o.final === accepted ? ', none lost' : ' - NOT ALL FINAL'}`,
    ratio: '-',
  });
}

/** Current against baseline, the saga figures the targets are set for; ratio = current / baseline. */
function sagaComparison(cur: SagaResult, base: SagaResult, ref: string) {
  const section = `4. saga vs ${ref}`;
  const conc = Object.keys(cur.closed)
    .sort((a, b) => Number(a) - Number(b))
    .pop()!;
  const c = cur.closed[conc]!;
  const b = base.closed[conc]!;
  const pairs: [string, number, number, string, number][] = [
    [`confirmed orders/s, ${conc} connections`, c.confirmedPerSec, b.confirmedPerSec, '', 0],
    ['orders/s x 6 / commits/s', c.ratioToCommitCeiling, b.ratioToCommitCeiling, '', 3],
    [`CPU per order, machine, ${conc} connections`, c.cpuMsPerOrder.machine, b.cpuMsPerOrder.machine, ' ms', 1],
    [`CPU per order, order service, ${conc} connections`, c.cpuMsPerOrder.order, b.cpuMsPerOrder.order, ' ms', 2],
    [`statements per order, ${conc} connections`, c.statementsPerOrder.total, b.statementsPerOrder.total, '', 1],
    [`open loop ${fmt(cur.open.ratePerSec)}/s: POST p99`, cur.open.postMs.p99, base.open.postMs.p99, ' ms', 1],
    [
      `open loop ${fmt(cur.open.ratePerSec)}/s: to final p99`,
      cur.open.placeToFinalMs.p99,
      base.open.placeToFinalMs.p99,
      ' ms',
      1,
    ],
    [
      `open loop ${fmt(cur.open.ratePerSec)}/s: machine busy`,
      cur.open.machineBusy * 100,
      base.open.machineBusy * 100,
      '%',
      0,
    ],
  ];
  // The lower open-loop rates, where a saturated machine shows first as POST latency.
  for (const o of cur.opens.slice(0, -1)) {
    const bo = base.opens.find((x) => x.ratePerSec === o.ratePerSec);
    if (!bo) continue;
    pairs.push([`open loop ${fmt(o.ratePerSec)}/s: POST p99`, o.postMs.p99, bo.postMs.p99, ' ms', 1]);
    pairs.push([`open loop ${fmt(o.ratePerSec)}/s: machine busy`, o.machineBusy * 100, bo.machineBusy * 100, '%', 0]);
  }
  // CPU per order of each process at every open-loop rate: where a change paid, or cost.
  const processes = ['order', 'inventory', 'payment', 'relay', 'postgres', 'rabbitmq', 'stack', 'benchClient'] as const;
  for (const o of cur.opens) {
    const bo = base.opens.find((x) => x.ratePerSec === o.ratePerSec);
    if (!bo) continue;
    for (const k of processes)
      pairs.push([
        `open loop ${fmt(o.ratePerSec)}/s: CPU per order, ${k === 'benchClient' ? 'load generator' : k}`,
        o.cpuMsPerOrder[k],
        bo.cpuMsPerOrder[k],
        ' ms',
        2,
      ]);
  }
  for (const [what, x, y, unit, d] of pairs)
    rows.push({
      section,
      what,
      figure: `${fmt(x, d)}${unit}`,
      baseline: `${fmt(y, d)}${unit} at ${ref}`,
      ratio: Number.isFinite(x) && Number.isFinite(y) && y > 0 ? `${fmt(x / y, 2)}x` : '-',
    });
}

/**
 * Builds `ref` from a git worktree with that commit's own build script, and keeps the bundle as
 * dist/saga-baseline.js in this repository, where node finds this repository's node_modules (the bundle leaves npm
 * packages external). The worktree borrows node_modules through a symlink and is removed afterwards.
 */
function buildBaseline(ref: string): string {
  const root = path.resolve(__dirname, '..');
  const sha = gitCommit(ref).slice(0, 7);
  const dir = path.join(os.tmpdir(), `saga-baseline-${sha}`);
  if (existsSync(dir)) execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root, stdio: 'inherit' });
  execFileSync('git', ['worktree', 'add', '--detach', dir, sha], { cwd: root, stdio: 'ignore' });
  try {
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    execFileSync('npm', ['run', 'build', '-s'], { cwd: dir, stdio: 'inherit' });
    copyFileSync(path.join(dir, 'dist/saga.js'), path.join(root, 'dist/saga-baseline.js'));
  } finally {
    execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root, stdio: 'ignore' });
  }
  log(`baseline ${ref} (${sha}) built into dist/saga-baseline.js`);
  return 'dist/saga-baseline.js';
}

/**
 * Where the saga section's databases live (`--saga-servers=shared,per-service`, both by default; the first one is compared with the baseline):
 * `shared` is the machine's one PostgreSQL holding all three databases (as `npm run setup` and the tests have them);
 * `per-service` is one PostgreSQL server per service, started by the bench on ports of its own with the machine
 * server's settings but autovacuum on, as docker-compose and k8s deploy them. On one server every walsender reads the WAL of all
 * three databases, so the per-service figures are the deployment's. The baseline runs on the first topology only.
 */
const SAGA_SERVERS = OPTS.sagaServers;

async function sectionSaga() {
  runtime.ownSession = true;
  try {
    await sagaSection();
  } finally {
    runtime.ownSession = false;
  }
}

async function sagaSection() {
  // BENCH_SAGA_CONC=64 (comma-separated) measures only those closed loops: a quicker A/B when bisecting a change.
  const conc = process.env.BENCH_SAGA_CONC ? process.env.BENCH_SAGA_CONC.split(',').map(Number) : P.sagaConc;
  const p = {
    ms: P.sagaMs,
    conc,
    openRates: P.sagaOpenRates,
    overloadFactor: P.sagaOverloadFactor,
    ...(OPTS.overloadRate === undefined ? {} : { overloadRate: OPTS.overloadRate }),
    openWaitMs: P.sagaOpenWaitMs,
    ceilingSecs: P.ceilingSecs,
  };
  /** A fresh env on the topology, and what removes it (and the servers it started). */
  const envOn = async (
    label: string,
    topology: 'shared' | 'per-service',
  ): Promise<{ env: TestEnv; close: () => Promise<void> }> => {
    if (topology === 'shared') {
      const e = await createTestEnv(label);
      return { env: e, close: () => e.close() };
    }
    // The machine server's settings, with autovacuum on as PostgreSQL's default (docker-compose and k8s keep it): its
    // ANALYZE renews the services' cached plans as their tables grow (see the plans section).
    const own = await createServers([...SERVICES], [...(await settingsOf(ADMIN_URL)), '-c autovacuum=on']);
    try {
      const e = await createTestEnv(label, undefined, Object.fromEntries(own.servers.map((s) => [s.name, s.url()])));
      log(`saga: one PostgreSQL per service on ports ${own.servers.map((s) => `${s.name} ${s.port}`).join(', ')}`);
      return {
        env: e,
        close: async () => {
          try {
            await e.close();
          } finally {
            own.close();
          }
        },
      };
    } catch (err) {
      own.close();
      throw err;
    }
  };
  const label = (t: string) => (t === 'shared' ? '' : ` (${t} PostgreSQL)`);
  let base: SagaResult | undefined;
  if (BASELINE_LABEL) {
    // The baseline first, in a fresh env of its own (same current migrations: the schema changes are additive), so
    // that neither bundle runs on the other's data.
    const file = BASELINE_REF ? buildBaseline(BASELINE_REF) : 'dist/saga.js';
    const { env: baseEnv, close } = await envOn('benchbase', SAGA_SERVERS[0]!);
    bundled.file = file;
    const stackNode = runtime.node;
    if (BASELINE_NODE) runtime.node = BASELINE_NODE;
    try {
      if (BASELINE_OUTBOX_TRIGGER) {
        for (const svc of ['order', 'inventory', 'payment'] as const) {
          await sql(
            baseEnv.adminUrl(svc),
            `CREATE FUNCTION outbox_purge() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN DELETE FROM outbox o USING inserted i WHERE o.id = i.id; RETURN NULL; END $$`,
          );
          await sql(
            baseEnv.adminUrl(svc),
            'CREATE TRIGGER outbox_purge AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION outbox_purge()',
          );
        }
      }
      base = await measureSaga(baseEnv, { ...p, offPathNice: BASELINE_OFF_PATH_NICE }, (m) =>
        log(`[${BASELINE_LABEL}]${niceLabel(BASELINE_OFF_PATH_NICE)} ${m}`),
      );
    } finally {
      bundled.file = 'dist/saga.js';
      runtime.node = stackNode;
      await killAll();
      await close();
    }
    sagaRows(base, `4. saga @${BASELINE_LABEL}${label(SAGA_SERVERS[0]!)}`);
  }
  const byTopology: Record<string, SagaResult> = {};
  for (const t of SAGA_SERVERS) {
    const { env: e, close } = await envOn('benchsaga', t);
    try {
      byTopology[t] = await measureSaga(e, { ...p, offPathNice: OFF_PATH_NICE }, (m) =>
        log(`${t}${niceLabel(OFF_PATH_NICE)}: ${m}`),
      );
    } finally {
      await killAll();
      await close();
    }
    sagaRows(byTopology[t], `4. saga${label(t)}`);
  }
  const cur = byTopology[SAGA_SERVERS[0]!]!;
  if (base) sagaComparison(cur, base, BASELINE_LABEL!);
  results.saga = {
    ...cur,
    offPathNice: OFF_PATH_NICE,
    servers: SAGA_SERVERS[0],
    ...(SAGA_SERVERS.length > 1 ? { byServers: byTopology } : {}),
    ...(base
      ? {
          baseline: {
            ref: BASELINE_REF ?? 'this commit',
            commit: BASELINE_COMMIT,
            node: BASELINE_NODE_VERSION ?? STACK_NODE,
            offPathNice: BASELINE_OFF_PATH_NICE,
            ...base,
          },
        }
      : {}),
  };
}

/** The order consumer's batch as the orders table grows: DB_PLAN_CACHE_MODE=force_custom_plan against auto (PostgreSQL's default plan cache). */
async function sectionPlans() {
  const runs = await measurePlans(env, P.planSizes, P.planBatches, log);
  for (const r of runs) {
    rows.push({
      section: '7. plans',
      what: `order consumer batch of 20 (inbox, lock and read, update, history; rolled back), orders table at ${fmt(r.orders)} rows${r.analyzed ? ', just analyzed' : ''} (mean of ${P.planBatches})`,
      figure: `${fmt(r.customMs, 2)} ms force_custom_plan (planned each run)`,
      baseline: `${fmt(r.genericMs, 2)} ms auto, the default${r.analyzed ? ' (plan renewed by ANALYZE)' : ' (generic plan from a 20-row table)'}`,
      ratio: ratio(r.customMs, r.genericMs),
    });
  }
  results.plans = runs;
}

/**
 * The price of the in-flight window: a relay SIGKILLed halfway through a backlog leaves its published but
 * unacknowledged messages to be sent again after the restart (consumers drop them by message id). Per window size:
 * duplicates after the restart, and the backlog rate before the kill. The events also go to a durable quorum queue,
 * as the services' queues are: the broker confirms a message only once that queue has it, as in production (the
 * counting consumer's own queue is neither durable nor replicated).
 */
async function sectionTail() {
  const out: Record<string, unknown> = {};
  let first: { duplicates: number; msgPerSec: number; window: number } | undefined;
  const durable = await benchQueue('quorum');
  for (const window of P.tailWindows) {
    const prefix = `${env.id}_tail${window}`;
    await createSlots(['order'], prefix);
    // 64 aggregates, as when the reference tail was measured: its figures stay comparable.
    await insertBacklog(env.serviceUrl('order'), P.tailRows, P.bytes, 500, HOT_AGGREGATES);
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createChannel();
    await assertEventTopology(ch, env.exchange);
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, env.exchange, '#');
    const seen = new Map<string, number>();
    let received = 0;
    let halfAt = 0;
    await ch.consume(
      queue,
      (m) => {
        if (!m) return;
        received++;
        const id = String(m.properties.messageId);
        seen.set(id, (seen.get(id) ?? 0) + 1);
        if (!halfAt && seen.size >= P.tailRows / 2) halfAt = now();
      },
      { noAck: true },
    );
    const extra = { RELAY_MAX_IN_FLIGHT: String(window) };
    const relay = await startRelay(['order'], prefix, extra);
    const t0 = firstStreamingAt(relay, ['order']);
    await waitUntil(() => halfAt > 0, { timeoutMs: 300_000, intervalMs: 5, message: 'half the backlog delivered' });
    await relay.kill('SIGKILL');
    const msgPerSec = P.tailRows / 2 / ((halfAt - t0) / 1000);
    const again = await startRelay(['order'], prefix, extra);
    await waitUntil(() => seen.size >= P.tailRows, {
      timeoutMs: 300_000,
      intervalMs: 50,
      message: 'whole backlog delivered after the restart',
    });
    await again.kill('SIGTERM');
    await conn.close();
    await dropSlots(['order'], prefix);
    const r = { window, rows: P.tailRows, duplicates: received - seen.size, msgPerSec };
    out[`${window}`] = r;
    first ??= { duplicates: r.duplicates, msgPerSec, window };
    rows.push({
      section: '7. crash tail',
      what: `SIGKILL at half of a ${fmt(P.tailRows)}-row backlog (quorum queue), in-flight window ${fmt(window)}`,
      figure: `${fmt(r.duplicates)} duplicates after restart, 0 lost; ${fmt(msgPerSec)} msg/s before the kill`,
      baseline: `window ${fmt(first.window)}: ${fmt(first.duplicates)} duplicates, ${fmt(first.msgPerSec)} msg/s`,
      ratio: ratio(msgPerSec, first.msgPerSec),
    });
    log(`tail window ${window}: ${r.duplicates} duplicates, ${fmt(msgPerSec)} msg/s`);
  }
  await durable.remove();
  results.tail = out;
}

async function sectionMemory() {
  const out: Record<string, unknown> = {};
  const q = await benchQueue('classic', true);
  let baseline = NaN;
  for (const n of P.memory) {
    const prefix = `${env.id}_mem${n}`;
    await createSlots(['order'], prefix);
    await sql(env.adminUrl('order'), 'TRUNCATE outbox');
    // 64 aggregates, as when the reference peak was measured: the most messages held behind their aggregate.
    await insertBacklog(env.serviceUrl('order'), n, 200, 20_000, HOT_AGGREGATES);
    const relay = await startRelay(['order'], prefix);
    const start = rssMiB(relay.pid);
    let max = start;
    const t0 = now();
    await waitUntil(
      async () => {
        max = Math.max(max, rssMiB(relay.pid));
        return (await published()) >= n;
      },
      { timeoutMs: 900_000, intervalMs: 100, message: `${n} rows published` },
    );
    const rate = n / ((now() - t0) / 1000);
    await relay.kill('SIGTERM');
    await dropSlots(['order'], prefix);
    out[`${n}`] = { startRssMiB: start, maxRssMiB: max, msgPerSec: rate };
    if (Number.isNaN(baseline)) baseline = max;
    rows.push({
      section: '6. memory',
      what: `relay RSS streaming a ${fmt(n)}-row backlog`,
      figure: `max ${fmt(max)} MiB (start ${fmt(start)}), ${fmt(rate)} msg/s`,
      baseline: `max ${fmt(baseline)} MiB at ${fmt(P.memory[0]!)} rows`,
      ratio: ratio(max, baseline),
    });
    log(`memory ${n}: max RSS ${fmt(max)} MiB`);
  }
  await q.remove();
  results.memory = out;
}

async function sectionPeer() {
  const q = await benchQueue('classic');
  // Its rate is far below the relay's; a smaller backlog measures it in reasonable time.
  const peer = await peerBacklog(env, P.peerBacklog, P.bytes);
  await q.remove();
  const ours = (results.throughput as { classic?: { relayMsgPerSec: number } } | undefined)?.classic?.relayMsgPerSec;
  results.peer = { backlogMsgPerSec: peer };
  rows.push({
    section: '5. peer',
    what: `pg-transactional-outbox backlog, classic, ${fmt(P.peerBacklog)} x ${P.bytes} B`,
    figure: `${fmt(peer)} msg/s`,
    baseline: ours ? `relay ${fmt(ours)} msg/s` : '-',
    ratio: ours ? ratio(peer, ours) : '-',
  });
}

function printTable() {
  const headers: (keyof Row)[] = ['section', 'what', 'figure', 'baseline', 'ratio'];
  const widths = headers.map((h) => Math.max(h.length, ...rows.map((r) => r[h].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(headers));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(headers.map((h) => r[h])));
}

/**
 * Everything measured runs as production does: the components from the bundle `npm run build` makes, and the
 * baselines (polling publisher, peer listener) bundled the same way, so no side pays for tsx.
 */
async function buildAll() {
  execFileSync('npm', ['run', 'build', '-s'], { cwd: path.resolve(__dirname, '..'), stdio: 'inherit' });
  await esbuild({
    entryPoints: [path.join(__dirname, 'polling-publisher.ts'), path.join(__dirname, 'peer-listener.ts')],
    outdir: path.resolve(__dirname, '../dist/bench'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    packages: 'external',
    alias: { '@saga/common': path.resolve(__dirname, '../packages/common/src') },
    logLevel: 'warning',
  });
  bundled.use = true;
}

const RUN: Record<Section, () => Promise<void>> = {
  throughput: sectionThroughput,
  writers: sectionWriters,
  latency: sectionLatency,
  saga: sectionSaga,
  plans: sectionPlans,
  memory: sectionMemory,
  peer: sectionPeer,
  tail: sectionTail,
};
/** The table rows each section added, for its reference file. */
const rowsOf = new Map<Section, Row[]>();

async function main() {
  await buildAll();
  await removeLeftovers();
  env = await createTestEnv('bench');
  const started = new Date();
  try {
    for (const section of SECTIONS) {
      if (!want(section)) continue;
      const from = rows.length;
      await RUN[section]();
      rowsOf.set(section, rows.slice(from));
    }
  } finally {
    await killAll();
    await env.close();
  }
  printTable();
  const versions = {
    node: process.version,
    /** The node that ran the components (--node), when it is not the bench's own. */
    ...(STACK_NODE !== process.version ? { stackNode: STACK_NODE } : {}),
    postgres: (
      await sql(process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 'SHOW server_version')
    ).rows[0].server_version,
    rabbitmq: (() => {
      try {
        return /RabbitMQ version: (\S+)/.exec(execFileSync('rabbitmqctl', ['status'], { encoding: 'utf8' }))?.[1];
      } catch {
        return undefined;
      }
    })(),
  };
  const run: Run = {
    startedAt: started.toISOString(),
    smoke: SMOKE,
    commit: COMMIT,
    args,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    versions,
    parameters: P,
    results,
    table: rows,
  };
  mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, resultFileName(started, SMOKE));
  writeFileSync(file, toJson(run));
  if (OPTS.reference)
    for (const [section, sectionRows] of rowsOf) {
      const ref = path.join(OUT, referenceFileName(section));
      writeFileSync(ref, toJson(referenceOf(run, section, sectionRows)));
      console.log(`reference: ${ref}`);
    }
  console.log(`\nresults: ${file}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
