/**
 * The saga end to end: PostgreSQL's commit ceiling with the stack up and idle, closed
 * loops (all orders final), an open loop on a fixed schedule, CPU per order from /proc and statements per order
 * from the services' own counters. Runs against whichever bundle `bundled.file` names, so that an older commit's
 * bundle can be measured the same way in the same run.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { urlForDatabase } from '../scripts/lib/admin';
import type { TestEnv } from '../test/support/env';
import { metricValue } from '../test/support/metrics';
import { as, sagaClient } from '../test/support/saga';
import { startStack, type Stack } from '../test/support/stack';
import { waitUntil } from '../test/support/wait';
import { jsonPoster } from './http-client';
import { now, sleep, sql, summary } from './lib';
import { machineTicks, procTicks, ticksByComm, tickMs } from './proc-cpu';

export type SagaParams = {
  /** Duration of each closed loop and of the open loop. */
  ms: number;
  /** Connections of the closed loops; CPU and statements are measured for each. */
  conc: number[];
  /** Rates of the open loops, one after the other; the last is the one the targets are set for. */
  openRates: number[];
  /** How long the open loop's orders may take to become final after its schedule ended, before it counts as behind. */
  openWaitMs: number;
  ceilingSecs: number;
  /**
   * An open loop at this multiple of the best closed-loop rate of the run (0: none): overload. The excess should be
   * refused (503 with Retry-After) while the accepted orders still finish quickly, and none of them is lost.
   */
  overloadFactor?: number;
  /** The overload loop at this rate instead, the same for every build measured. */
  overloadRate?: number;
  /**
   * CPU weight of the components off the POST path (relay, inventory, payment) as a nice value, 0 for the default
   * weight. Each component runs in a scheduling group of its own (a session, hence an autogroup, as a container has
   * its cgroup); the nice value is set on that group, so it weighs the whole process against PostgreSQL's and
   * RabbitMQ's processes as `cpu_shares` weighs a container (nice 10 is the CFS weight 110 against 1024). Where
   * autogroup is off, every thread of the process is reniced instead.
   */
  offPathNice?: number;
};

type Lat = ReturnType<typeof summary>;
/** Milliseconds of CPU per order, by process group; `machine` is every non-idle jiffy of /proc/stat. */
export type CpuPerOrder = Record<ServiceName | 'relay', number> & {
  postgres: number;
  rabbitmq: number;
  stack: number;
  benchClient: number;
  machine: number;
};
export type ClosedLoop = {
  concurrency: number;
  orders: number;
  confirmed: number;
  cancelled: number;
  /** POSTs answered 503 (the saga's backlog at its bound); each worker waited Retry-After before the next. */
  refused: number;
  placedPerSec: number;
  /** Orders final (confirmed or cancelled) per second, from the first POST to the last final event. */
  finalPerSec: number;
  confirmedPerSec: number;
  /** orders/s × 6 ÷ PostgreSQL commits/s (same run, stack idle); compared with the commit ceiling of the same run. */
  ratioToCommitCeiling: number;
  postMs: Lat;
  placeToFinalMs: Lat;
  cpuMsPerOrder: CpuPerOrder;
  /** Statements (round trips) per order per service from `db_statements_total`; NaN where a bundle has no such counter. */
  statementsPerOrder: Record<ServiceName | 'total', number>;
};
export type OpenLoop = {
  ratePerSec: number;
  scheduled: number;
  final: number;
  /** All orders accepted and final within the wait after the schedule ended, and 99% of POSTs sent within 20 ms of their time. */
  keptUp: boolean;
  sendLagMs: Lat;
  /** Latencies count from the scheduled send time, so a late loop cannot hide a slow system. */
  postMs: Lat;
  placeToFinalMs: Lat;
  statusCounts: Record<string, number>;
  /** Answers 503 that carried Retry-After. */
  retryAfter503: number;
  /** From the first scheduled send until every order is final (or the wait ends). */
  cpuMsPerOrder: CpuPerOrder;
  /** Share of the machine's CPU time in use over the same span (1 = every core busy). */
  machineBusy: number;
};
/** `opens`: every open loop, in the order run; `open` is the last of them (the rate the targets are set for). */
export type SagaResult = {
  commitCeilingTps: number;
  /** CPU ms per second of the stack up and idle (no order for IDLE_SECS): its timers and wake-ups. */
  idleCpuMsPerSec?: CpuPerOrder;
  closed: Record<string, ClosedLoop>;
  open: OpenLoop;
  opens: OpenLoop[];
  /** The open loop at `overloadFactor` times the best closed-loop rate, when run. */
  overload?: OpenLoop;
  invariants: string;
};

/** How long the idle stack is measured. */
const IDLE_SECS = 10;

type CpuSnapshot = {
  nodes: Record<ServiceName | 'relay', number>;
  postgres: number;
  rabbitmq: number;
  machine: number;
  benchUs: number;
};
function cpuSnapshot(stack: Stack): CpuSnapshot {
  const nodes = { relay: procTicks(stack.relay.pid) } as Record<ServiceName | 'relay', number>;
  for (const s of SERVICES) nodes[s] = procTicks(stack.services[s].proc.pid);
  const u = process.cpuUsage();
  return {
    nodes,
    postgres: ticksByComm('postgres'),
    rabbitmq: ticksByComm('beam.smp'),
    machine: machineTicks(),
    benchUs: u.user + u.system,
  };
}
function cpuPerOrder(a: CpuSnapshot, b: CpuSnapshot, orders: number): CpuPerOrder {
  const per = (ticks: number) => (ticks * tickMs) / orders;
  const out = {} as CpuPerOrder;
  let stack = 0;
  for (const k of ['order', 'inventory', 'payment', 'relay'] as const) {
    out[k] = per(b.nodes[k] - a.nodes[k]);
    stack += out[k];
  }
  out.postgres = per(b.postgres - a.postgres);
  out.rabbitmq = per(b.rabbitmq - a.rabbitmq);
  out.stack = stack + out.postgres + out.rabbitmq;
  out.benchClient = (b.benchUs - a.benchUs) / 1000 / orders;
  out.machine = per(b.machine - a.machine);
  return out;
}

/**
 * `db_statements_total` of each service, from its admin listener (the only one serving /metrics); NaN for a service
 * whose /metrics has no such counter or that has no admin listener (an older bundle).
 */
async function statements(stack: Stack): Promise<Record<ServiceName, number>> {
  const out = {} as Record<ServiceName, number>;
  for (const s of SERVICES) {
    const url = stack.services[s].adminUrl;
    const text = await fetch(`${url}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    out[s] = /^db_statements_total[ {]/m.test(text) ? await metricValue(url, 'db_statements_total') : NaN;
  }
  return out;
}

/**
 * PostgreSQL's single-row INSERT + COMMIT rate, 16 clients, on a scratch table in a scratch database of this env
 * (dropped with the env), on the server that holds the order database. Measured with the stack up and idle: its walsenders decoding cost the server capacity.
 */
async function commitCeiling(env: TestEnv, secs: number): Promise<number> {
  const db = `${env.id}_scratch`;
  // On the order database's server: with a server per service, the one the POSTs commit on.
  const server = urlForDatabase(env.adminUrl('order'), 'postgres');
  await sql(server, `CREATE DATABASE "${db}"`);
  const url = urlForDatabase(server, db);
  await sql(url, 'CREATE TABLE commit_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
  const script = path.join(os.tmpdir(), `${db}.sql`);
  writeFileSync(script, 'INSERT INTO commit_probe DEFAULT VALUES;\n');
  const { stdout } = await promisify(execFile)(
    '/usr/bin/pgbench',
    ['-n', '-T', String(secs), '-c', '16', '-j', '2', '-f', script, url],
    { encoding: 'utf8' },
  );
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`pgbench: no tps in\n${stdout}`);
  return Number(m[1]);
}

/** Lower a process's CPU weight to that of `nice`: on its autogroup where Linux groups by session, else on every thread. */
function lowerWeight(pid: number, nice: number): void {
  const autogroup = (() => {
    try {
      return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
    } catch {
      return false;
    }
  })();
  if (autogroup) {
    const group = (file: string) => readFileSync(file, 'utf8').split(' ')[0];
    if (group(`/proc/${pid}/autogroup`) === group('/proc/self/autogroup'))
      throw new Error(`process ${pid} shares the bench's scheduling group: start it in a session of its own`);
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
    return;
  }
  for (const tid of readdirSync(`/proc/${pid}/task`)) os.setPriority(Number(tid), nice);
}

export async function measureSaga(env: TestEnv, p: SagaParams, log: (m: string) => void): Promise<SagaResult> {
  const slotPrefix = `${env.id}_saga`;
  // Log level as in production (info): log cost per message is part of what an order costs.
  const stack = await startStack(env, { relay: { RELAY_SLOT_PREFIX: slotPrefix } });
  // The load generator keeps no logs of the stack (it only needed them to see it start): parsing every line of five
  // busy processes cost this process CPU and GC pauses, which showed as POST latency and late sends in the open loop.
  for (const p of [stack.relay, ...SERVICES.map((s) => stack.services[s].proc)]) p.discardOutput();
  if (p.offPathNice)
    for (const pid of [stack.relay.pid, stack.services.inventory.proc.pid, stack.services.payment.proc.pid])
      lowerWeight(pid, p.offPathNice);
  const conn = await amqp.connect(env.rabbitUrl);
  let client: ReturnType<typeof jsonPoster> | undefined;
  try {
    const urls = () => ({
      order: stack.services.order.url,
      inventory: stack.services.inventory.url,
      payment: stack.services.payment.url,
    });
    const saga = sagaClient(urls);
    const skus = await Promise.all(Array.from({ length: 20 }, () => saga.product(1_000_000_000, 100)));
    const customers = await Promise.all(Array.from({ length: 50 }, () => saga.account(1_000_000_000_000)));
    const ch = await conn.createChannel();
    await ch.assertQueue('bench.final', { durable: false, autoDelete: true });
    await ch.bindQueue('bench.final', env.exchange, 'order.OrderConfirmed');
    await ch.bindQueue('bench.final', env.exchange, 'order.OrderCancelled');
    const finalAt = new Map<string, { at: number; type: string }>();
    await ch.consume(
      'bench.final',
      (m) => m && finalAt.set(String(m.properties.correlationId), { at: now(), type: String(m.properties.type) }),
      { noAck: true },
    );

    // One token per customer, minted once: the order API takes the customer from it.
    const tokens = new Map(customers.map((c) => [c, as(c)]));
    let n = 0;
    const poster = (client = jsonPoster(urls().order, Math.max(...p.conc, 256)));
    const post = (): Promise<{ status: number; orderId?: string; customerId: string; retryAfter?: string }> => {
      const i = n++;
      const customerId = customers[i % customers.length]!;
      return poster
        .post(
          '/orders',
          { customerId, items: [{ sku: skus[i % skus.length], quantity: 1 + (i % 3) }] },
          tokens.get(customerId),
        )
        .then((res) => ({
          status: res.status,
          orderId: (res.body as { orderId?: string } | undefined)?.orderId,
          customerId,
          retryAfter: res.retryAfter,
        }));
    };

    // Idle first: what the stack costs when nobody orders (timers, polls, keepalives). The stack settled meanwhile.
    await sleep(1000);
    const idle0 = cpuSnapshot(stack);
    await sleep(IDLE_SECS * 1000);
    const idleCpuMsPerSec = cpuPerOrder(idle0, cpuSnapshot(stack), IDLE_SECS);
    log(`saga: idle stack ${idleCpuMsPerSec.stack.toFixed(1)} ms of CPU per second`);
    // Then the ceiling, with the stack started and idle (figures are compared with the ceiling of the same run).
    const commitCeilingTps = await commitCeiling(env, p.ceilingSecs);
    log(`saga: commit ceiling ${commitCeilingTps.toFixed(0)} tps (16 clients, stack idle)`);

    const closed: Record<string, ClosedLoop> = {};
    for (const conc of p.conc) {
      const placedAt = new Map<string, number>();
      const postLat: number[] = [];
      let refused = 0;
      const stmts0 = await statements(stack);
      const cpu0 = cpuSnapshot(stack);
      const t0 = now();
      const deadline = t0 + p.ms;
      await Promise.all(
        Array.from({ length: conc }, async () => {
          while (now() < deadline) {
            const started = now();
            const r = await post();
            if (r.status === 503) {
              // Refused for the backlog: a client comes back after Retry-After, and the refusal is no POST latency.
              refused++;
              await sleep(1000 * (Number(r.retryAfter) || 1));
              continue;
            }
            postLat.push(now() - started);
            if (r.status === 202 && r.orderId) {
              placedAt.set(r.orderId, started);
              saga.recordPlaced(r.orderId, r.customerId);
            }
          }
        }),
      );
      const placedSecs = (now() - t0) / 1000;
      await waitUntil(() => [...placedAt.keys()].every((id) => finalAt.has(id)), {
        timeoutMs: 300_000,
        intervalMs: 20,
        message: 'every order final',
      });
      const mine = [...placedAt].map(([id, t]) => ({ t, f: finalAt.get(id)! }));
      const lastFinal = Math.max(...mine.map((m) => m.f.at));
      // Work that follows the final event (reservations settling) belongs to the order too: stop counting only once
      // the services' statement counters stand still (an older bundle without counters gets a fixed second).
      let stmts1 = await statements(stack);
      if (Number.isNaN(stmts1.order)) await sleep(1000);
      else {
        for (let i = 0; i < 40; i++) {
          await sleep(250);
          const again = await statements(stack);
          const still = SERVICES.every((s) => again[s] === stmts1[s]);
          stmts1 = again;
          if (still) break;
        }
      }
      const cpu1 = cpuSnapshot(stack);
      const orders = placedAt.size;
      const confirmed = mine.filter((m) => m.f.type === 'OrderConfirmed').length;
      const finalSecs = (lastFinal - t0) / 1000;
      const perService = Object.fromEntries(SERVICES.map((s) => [s, (stmts1[s] - stmts0[s]) / orders])) as Record<
        ServiceName,
        number
      >;
      const r: ClosedLoop = {
        concurrency: conc,
        orders,
        refused,
        confirmed,
        cancelled: orders - confirmed,
        placedPerSec: orders / placedSecs,
        finalPerSec: orders / finalSecs,
        confirmedPerSec: confirmed / finalSecs,
        ratioToCommitCeiling: ((orders / finalSecs) * 6) / commitCeilingTps,
        postMs: summary(postLat),
        placeToFinalMs: summary(mine.map((m) => m.f.at - m.t)),
        cpuMsPerOrder: cpuPerOrder(cpu0, cpu1, orders),
        statementsPerOrder: { ...perService, total: SERVICES.reduce((a, s) => a + perService[s], 0) },
      };
      closed[`${conc}`] = r;
      log(
        `saga ${conc}: ${r.placedPerSec.toFixed(0)} placed/s, ${r.finalPerSec.toFixed(0)} final/s, cpu ${r.cpuMsPerOrder.machine.toFixed(1)} ms/order, ${r.statementsPerOrder.total.toFixed(1)} statements/order`,
      );
    }

    // Open loops: POSTs on a fixed schedule whatever the answers, for the same duration.
    const openLoop = async (rate: number): Promise<OpenLoop> => {
      const total = Math.round((rate * p.ms) / 1000);
      const due: number[] = [];
      const lag: number[] = [];
      const postAt: number[] = [];
      const ids: (string | undefined)[] = [];
      const statusCounts: Record<string, number> = {};
      let retryAfter503 = 0;
      const inflight: Promise<void>[] = [];
      const cpu0 = cpuSnapshot(stack);
      const start = now() + 50;
      for (let i = 0; i < total; i++) {
        due[i] = start + (i * 1000) / rate;
        const wait = due[i]! - now();
        if (wait > 1) await sleep(wait);
        lag[i] = Math.max(0, now() - due[i]!);
        inflight.push(
          post().then(
            (r) => {
              postAt[i] = now();
              statusCounts[r.status] = (statusCounts[r.status] ?? 0) + 1;
              if (r.status === 503 && r.retryAfter) retryAfter503++;
              if (r.status === 202 && r.orderId) {
                ids[i] = r.orderId;
                saga.recordPlaced(r.orderId, r.customerId);
              }
            },
            (err: unknown) => {
              // No answer at all (the connection failed): counted by its error code, so the kind shows in the table.
              const key = `error ${(err as NodeJS.ErrnoException | undefined)?.code ?? 'without a code'}`;
              statusCounts[key] = (statusCounts[key] ?? 0) + 1;
            },
          ),
        );
      }
      await Promise.all(inflight);
      const placed = ids.flatMap((id, i) => (id ? [{ id, i }] : []));
      const allFinal = await waitUntil(() => placed.every((o) => finalAt.has(o.id)), {
        timeoutMs: p.openWaitMs,
        intervalMs: 20,
      }).then(
        () => true,
        () => false,
      );
      const cpu1 = cpuSnapshot(stack);
      const busySecs = (now() - start) / 1000;
      const finals = placed.filter((o) => finalAt.has(o.id));
      const sendLagMs = summary(lag);
      const open: OpenLoop = {
        ratePerSec: rate,
        scheduled: total,
        final: finals.length,
        keptUp: allFinal && placed.length === total && sendLagMs.p99 <= 20,
        sendLagMs,
        postMs: summary(placed.map((o) => postAt[o.i]! - due[o.i]!)),
        placeToFinalMs: summary(finals.map((o) => finalAt.get(o.id)!.at - due[o.i]!)),
        statusCounts,
        retryAfter503,
        cpuMsPerOrder: cpuPerOrder(cpu0, cpu1, total),
        machineBusy: ((cpu1.machine - cpu0.machine) * tickMs) / 1000 / busySecs / os.cpus().length,
      };
      log(
        `saga open ${rate}/s: POST p99 ${open.postMs.p99.toFixed(1)} ms, final p99 ${open.placeToFinalMs.p99.toFixed(1)} ms, machine ${(open.machineBusy * 100).toFixed(0)}% busy${open.keptUp ? '' : ' (fell behind)'}`,
      );
      return open;
    };
    const opens: OpenLoop[] = [];
    for (const rate of p.openRates) opens.push(await openLoop(rate));
    const best = Math.max(0, ...Object.values(closed).map((c) => c.finalPerSec));
    const overloadRate = p.overloadRate ?? (p.overloadFactor && best > 0 ? Math.round(best * p.overloadFactor) : 0);
    const overload = overloadRate > 0 ? await openLoop(overloadRate) : undefined;

    await saga.expectInvariants(300_000);
    return {
      commitCeilingTps,
      idleCpuMsPerSec,
      closed,
      open: opens[opens.length - 1]!,
      opens,
      ...(overload ? { overload } : {}),
      invariants: 'held: every order final; stock and balances add up; no event applied twice',
    };
  } finally {
    client?.close();
    await conn.close().catch(() => undefined);
    await stack.stop();
    for (const s of SERVICES)
      await sql(
        env.adminUrl(s),
        'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
        [`${slotPrefix}_${s}`],
      ).catch(() => undefined);
  }
}
