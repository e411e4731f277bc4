/**
 * The saga monitor against the real stack: it sees every event of a saga (each once), derives the saga's state and
 * timeline, detects a stuck saga and says what it waits for, exports the saga metrics, leaves nothing unroutable
 * that the catalogue knows, and its page shows a saga live in headless Chromium.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import amqp from 'amqplib';
import pg from 'pg';
import pino from 'pino';
import type { Incoming } from '@saga/common/messaging/batch-handler';
import { chromium, type Browser } from 'playwright-core';
import { topologyNames } from '@saga/common/messaging/topology';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { collect } from '../support/amqp';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { killAll, ROOT } from '../support/process';
import { sagaClient } from '../support/saga';
import { http, startMonitor, startStack, type ServiceProc, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';
import { conformanceProblems, recorded } from '../support/openapi-conformance';
import { monitorHandler } from '../../services/monitor/src/messaging/handlers';
import {
  DEAD_LETTER_REPORTS_QUEUE,
  startMonitorBrokerSession,
} from '../../services/monitor/src/messaging/dead-letters';
import { createCatchUp } from '../../services/monitor/src/catch-up';
import { Registry } from 'prom-client';
import { settleWithin } from '@saga/common/runtime/settle';
import { startTcpProxyFor, throughProxy } from '../support/tcp-proxy';

type SagaView = {
  orderId: string;
  status: string;
  settled: boolean;
  reason: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  stuck: boolean;
  waitingFor: { service: string; step: string; events: string[] } | null;
  events: {
    type: string;
    service: string;
    messageId: string;
    causationId: string | null;
    traceparent: string | null;
    at: string;
    hopMs: number | null;
  }[];
};

let env: TestEnv;
let stack: Stack;
let monitor: ServiceProc;
const url = (s: 'order' | 'inventory' | 'payment') => stack.services[s].url;
const saga = sagaClient(() => ({ order: url('order'), inventory: url('inventory'), payment: url('payment') }));
const STUCK_AFTER_MS = 1500;

const sagaOf = (orderId: string) => http<SagaView>('GET', `${monitor.adminUrl}/sagas/${orderId}`);
/** The monitor's view of the saga once it holds `n` events and is in `status`. */
const sagaWhen = (orderId: string, status: string, n: number) =>
  waitUntil(
    async () => {
      const r = await sagaOf(orderId);
      return r.status === 200 && r.body.status === status && r.body.events.length === n ? r.body : undefined;
    },
    { timeoutMs: 30_000, message: `monitor sees ${orderId} ${status} with ${n} events` },
  );

beforeAll(async () => {
  env = await createTestEnv('monitor');
  stack = await startStack(env);
  monitor = await startMonitor(env, { SAGA_STUCK_AFTER_MS: String(STUCK_AFTER_MS) });
});
afterAll(async () => {
  await stack?.stop();
  await monitor?.proc.kill('SIGTERM');
  await killAll();
  await env?.close();
});

describe('the saga monitor', () => {
  it('shows a confirmed saga as a causal timeline of its five events, with per-hop delays and its duration', async () => {
    const sku = await saga.product(5, 1200);
    const customer = await saga.account(10_000);
    const id = await saga.place(customer, [{ sku, quantity: 2 }]);
    await saga.finalOrder(id);
    const s = await sagaWhen(id, 'CONFIRMED', 5);
    expect(s.events.map((e) => e.type)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentAuthorized',
      'OrderConfirmed',
      'StockCommitted',
    ]);
    expect(s.events.map((e) => e.service)).toEqual(['order', 'inventory', 'payment', 'order', 'inventory']);
    // Each event after the first names the one before as its cause, and its hop is the time between them.
    s.events.slice(1).forEach((e, i) => {
      expect(e.causationId).toBe(s.events[i]!.messageId);
      expect(e.hopMs).toBe(Date.parse(e.at) - Date.parse(s.events[i]!.at));
    });
    expect(s.events[0]!.hopMs).toBeNull();
    expect(s.durationMs).toBe(Date.parse(s.finishedAt!) - Date.parse(s.startedAt!));
    expect(s.durationMs!).toBeGreaterThanOrEqual(0);
    expect(s).toMatchObject({ status: 'CONFIRMED', reason: null, stuck: false, settled: true, waitingFor: null });
    expect(
      await metricValue(monitor.adminUrl, 'saga_duration_seconds_count', { outcome: 'confirmed' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('shows a compensated saga with its reason, and leaves no catalogue event unroutable', async () => {
    const sku = await saga.product(5, 5000);
    const poor = await saga.account(100);
    const id = await saga.place(poor, [{ sku, quantity: 1 }]);
    expect((await saga.finalOrder(id)).status).toBe('CANCELLED');
    const s = await sagaWhen(id, 'CANCELLED', 5);
    expect(s).toMatchObject({ reason: 'PAYMENT_DECLINED', settled: true, waitingFor: null });
    expect(s.events.map((e) => e.type)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentDeclined',
      'OrderCancelled',
      'StockReleased',
    ]);
    expect(
      await metricValue(monitor.adminUrl, 'saga_duration_seconds_count', { outcome: 'cancelled' }),
    ).toBeGreaterThanOrEqual(1);
    // StockCommitted and StockReleased had no consumer before the monitor: they piled up in the unroutable queue.
    const conn = await amqp.connect(env.rabbitUrl);
    try {
      const ch = await conn.createChannel();
      expect((await ch.checkQueue(topologyNames(env.exchange).unroutableQueue)).messageCount).toBe(0);
    } finally {
      await conn.close();
    }
  });

  it('applies a redelivered event once', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange, { bindingKey: 'order.OrderPlaced' });
    try {
      const sku = await saga.product(5, 100);
      const customer = await saga.account(10_000);
      const id = await saga.place(customer, [{ sku, quantity: 1 }]);
      const before = await sagaWhen(id, 'CONFIRMED', 5);
      const placed = await waitUntil(() => sink.messages.find((m) => m.aggregateId === id), {
        message: 'OrderPlaced captured',
      });
      const duplicates = await metricValue(monitor.adminUrl, 'consumer_messages_total', { outcome: 'duplicate' });
      const conn = await amqp.connect(env.rabbitUrl);
      const ch = await conn.createConfirmChannel();
      ch.publish(env.exchange, placed.routingKey, placed.raw.content, placed.raw.properties);
      await ch.waitForConfirms();
      await conn.close();
      await waitUntil(
        async () =>
          (await metricValue(monitor.adminUrl, 'consumer_messages_total', { outcome: 'duplicate' })) > duplicates,
        { message: 'duplicate seen' },
      );
      // Nothing of the saga changed: not its events, not its summary (seq, times, duration).
      expect((await sagaOf(id)).body).toEqual(before);
    } finally {
      await sink.close();
    }
  });

  it('reports a saga stuck while payment is down, with the step it waits for, until payment comes back', async () => {
    const sku = await saga.product(5, 300);
    const customer = await saga.account(10_000);
    await stack.services.payment.proc.kill('SIGTERM');
    const id = await saga.place(customer, [{ sku, quantity: 1 }]);
    const stuck = await waitUntil(
      async () =>
        (
          await http<{ sagas: (SagaView & { deadLetters: unknown[] })[] }>(
            'GET',
            `${monitor.adminUrl}/sagas?state=stuck`,
          )
        ).body.sagas.find((s) => s.orderId === id),
      { timeoutMs: 30_000, message: 'saga listed as stuck' },
    );
    expect(stuck.waitingFor).toMatchObject({ service: 'payment', events: ['PaymentAuthorized', 'PaymentDeclined'] });
    expect(stuck.deadLetters).toEqual([]);
    // A message of this saga that a consumer dead-letters (here a StockReserved whose data breaks its contract) shows
    // on the stuck saga, with the queue it waits in and why.
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    ch.publish(
      env.exchange,
      'inventory.StockReserved',
      Buffer.from(JSON.stringify({ version: 1, data: { orderId: id } })),
      {
        messageId: randomUUID(),
        type: 'StockReserved',
        correlationId: id,
        contentType: 'application/json',
        headers: { [HEADER.aggregateType]: 'inventory', [HEADER.aggregateId]: id, causationId: null },
      },
    );
    await ch.waitForConfirms();
    await conn.close();
    // The event goes to every queue bound to its key (the order service's and the monitor's), and each consumer
    // dead-letters it on its own time: wait for the monitor's queue, whichever report comes first.
    const reported = await waitUntil(
      async () =>
        (
          await http<{ sagas: (SagaView & { deadLetters: { queue: string; type: string; reason: string }[] })[] }>(
            'GET',
            `${monitor.adminUrl}/sagas?state=stuck`,
          )
        ).body.sagas.find((s) => s.orderId === id && s.deadLetters.some((d) => d.queue === 'monitor.events.dlq')),
      { message: "the monitor queue's dead-letter report on the stuck saga" },
    );
    expect(reported.deadLetters).toContainEqual(
      expect.objectContaining({ queue: 'monitor.events.dlq', type: 'StockReserved', reason: 'invalid' }),
    );
    expect(await metricValue(monitor.adminUrl, 'sagas_stuck')).toBeGreaterThanOrEqual(1);
    expect(await metricValue(monitor.adminUrl, 'saga_oldest_pending_seconds')).toBeGreaterThanOrEqual(
      STUCK_AFTER_MS / 1000,
    );
    const pending = (await http<{ sagas: SagaView[] }>('GET', `${monitor.adminUrl}/sagas?state=pending`)).body.sagas;
    expect(pending.some((s) => s.orderId === id)).toBe(false);

    await stack.restart('payment');
    await sagaWhen(id, 'CONFIRMED', 5);
    await waitUntil(async () => (await metricValue(monitor.adminUrl, 'sagas_stuck')) === 0, {
      message: 'no saga stuck',
    });
  });

  it('pages the list by arrival and names a bad query field', async () => {
    const page1 = await http<{ sagas: { seq: number }[]; next: number | null }>(
      'GET',
      `${monitor.adminUrl}/sagas?limit=2`,
    );
    expect(page1.body.sagas).toHaveLength(2);
    expect(page1.body.next).toBe(page1.body.sagas[1]!.seq);
    const page2 = await http<{ sagas: { seq: number }[] }>(
      'GET',
      `${monitor.adminUrl}/sagas?limit=2&after=${page1.body.next}`,
    );
    expect(page2.body.sagas[0]!.seq).toBeLessThan(page1.body.next!);
    const all = await http<{ sagas: { seq: number }[]; next: number | null }>(
      'GET',
      `${monitor.adminUrl}/sagas?limit=500`,
    );
    expect(all.body.next).toBeNull(); // fewer than a page: no next page
    const paged = [...page1.body.sagas, ...page2.body.sagas].map((x) => x.seq);
    expect(new Set(paged).size).toBe(paged.length);
    expect(all.body.sagas.slice(0, 4).map((x) => x.seq)).toEqual(paged);
    const bad = await http<{ errors: { path: string }[] }>('GET', `${monitor.adminUrl}/sagas?state=lost`);
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e) => e.path)).toContain('query.state');
    expect((await sagaOf('no-such-order')).status).toBe(404);
  });

  it('shows a new saga on its page and completes its timeline live (headless Chromium)', async () => {
    expect(existsSync('/usr/bin/chromium')).toBe(true); // .ci/run installs Debian's chromium
    const browser: Browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
      await page.goto(monitor.adminUrl);
      const sku = await saga.product(5, 700);
      const customer = await saga.account(10_000);
      const id = await saga.place(customer, [{ sku, quantity: 1 }]);
      const row = page.locator(`#recent tr[data-order-id="${id}"]`);
      await row.waitFor({ timeout: 30_000 });
      await row.click();
      await page.locator(`#saga[data-order-id="${id}"][data-status="CONFIRMED"]`).waitFor({ timeout: 30_000 });
      await page.waitForFunction('document.querySelectorAll("#waterfall .event").length === 5', undefined, {
        timeout: 30_000,
      });
      expect(
        await page.locator('#waterfall .event').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-type'))),
      ).toEqual(['OrderPlaced', 'StockReserved', 'PaymentAuthorized', 'OrderConfirmed', 'StockCommitted']);
      expect(Number(await page.locator('#n-confirmed').textContent())).toBeGreaterThanOrEqual(1);
      const dir = path.join(ROOT, 'test-output');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: path.join(dir, 'monitor-page.png'), fullPage: true });
      expect(existsSync(path.join(dir, 'monitor-page.png'))).toBe(true);
    } finally {
      await browser.close();
    }
  });
});

describe("the monitor's contract", () => {
  it('every answer the tests above received (monitor and services) conforms to the OpenAPI document its component serves', async () => {
    const fromMonitor = recorded.filter((x) => x.url.startsWith(monitor.adminUrl));
    expect(fromMonitor.length).toBeGreaterThan(10);
    expect([...new Set(fromMonitor.map((x) => x.status))]).toEqual(expect.arrayContaining([200, 400, 404]));
    // Payment was restarted on another port by the stuck test: its earlier answers have no server to ask any more.
    const live = [monitor.adminUrl, url('order'), url('inventory'), url('payment')];
    expect(await conformanceProblems(recorded.filter((x) => live.some((o) => x.url.startsWith(o))))).toEqual([]);
  });
});

describe("the monitor's write path", () => {
  it('keeps every event of a saga in its summary when two transactions record events of it at once', async () => {
    const pool = new pg.Pool({ connectionString: env.monitorUrl(), max: 4 });
    try {
      const handler = monitorHandler(pool, 'monitor.race-test');
      const event = (orderId: string, type: 'OrderPlaced' | 'StockReserved', causationId: string | null) =>
        ({
          type,
          data: { orderId },
          envelope: {
            id: randomUUID(),
            aggregateType: type === 'OrderPlaced' ? 'order' : 'inventory',
            aggregateId: orderId,
            type,
            payload: { version: 1, data: {} },
            headers: { correlationId: orderId, causationId },
          },
          log: pino({ level: 'silent' }),
        }) as unknown as Incoming;
      const orders = Array.from({ length: 30 }, () => randomUUID());
      // Each saga's two events in two concurrent transactions: without the per-saga lock, each would summarize only
      // what it saw and the last to commit would win with one event.
      await Promise.all(
        orders.flatMap((o) => [
          handler.apply([event(o, 'OrderPlaced', null)]),
          handler.apply([event(o, 'StockReserved', 'x')]),
        ]),
      );
      const { rows } = await pool.query<{ events: number; waiting_service: string }>(
        'SELECT events, waiting_service FROM sagas WHERE order_id = ANY($1)',
        [orders],
      );
      expect(rows).toHaveLength(orders.length);
      expect(rows.every((r) => r.events === 2 && r.waiting_service === 'payment')).toBe(true);
    } finally {
      await pool.end();
    }
  });
});

describe("the monitor's broker session", () => {
  const logLines: { msg?: string }[] = [];
  const sessionLog = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: env.monitorUrl(), max: 1 });
  });
  afterAll(() => pool.end());
  const startSession = (depths: (number | undefined)[], url: string, eventsQueue = 'monitor.events') =>
    startMonitorBrokerSession({
      url,
      exchange: env.exchange,
      eventsQueue,
      pool,
      log: sessionLog,
      registry: new Registry(),
      catchUp: { ...createCatchUp(), queueDepth: (n) => void depths.push(n) },
      depthEveryMs: 50,
    });

  it('a stop while its connection is still being made ends that session: stop returns, nothing consumes after it', async () => {
    const proxy = await startTcpProxyFor(env.rabbitUrl);
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createChannel();
    // The monitor process of this suite consumes the same queue.
    const consumers = async () => (await ch.checkQueue(DEAD_LETTER_REPORTS_QUEUE)).consumerCount;
    try {
      const before = await consumers();
      logLines.length = 0;
      proxy.stall(); // the connection waits on a slow network
      const session = startSession([], throughProxy(env.rabbitUrl, proxy));
      await waitUntil(() => proxy.accepted() > 0, { message: 'connecting' });
      const stopping = session.stop();
      proxy.restore(); // the connection completes after the stop
      await settleWithin(stopping, 10_000, 'stop while connecting');
      expect(session.isReady()).toBe(false);
      expect(await consumers()).toBe(before);
      expect(logLines.filter((l) => l.msg === 'consuming dead-letter reports')).toEqual([]);
    } finally {
      await conn.close();
      await proxy.close();
    }
  });

  it('a stop while the broker never answers the handshake returns without waiting for the connect bound', async () => {
    const proxy = await startTcpProxyFor(env.rabbitUrl);
    try {
      proxy.blackhole(); // the connection is accepted and never answered
      const session = startSession([], throughProxy(env.rabbitUrl, proxy));
      await waitUntil(() => proxy.accepted() > 0, { message: 'connecting' });
      // The connect's own bound is 15 s, as long as a whole shutdown: the stop must not wait for it.
      await settleWithin(session.stop(), 5_000, 'stop during a silent handshake');
      expect(session.isReady()).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('a stop on a silent broker link (no FIN, no RST) ends the session without waiting for the broker', async () => {
    const proxy = await startTcpProxyFor(env.rabbitUrl);
    try {
      const session = startSession([], throughProxy(env.rabbitUrl, proxy));
      await waitUntil(() => session.isReady(), { message: 'consuming' });
      proxy.blackhole(); // the broker never answers the close
      await settleWithin(session.stop(), 10_000, 'stop on a silent link');
      expect(session.isReady()).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('reads a missing events queue as unknown without ending its session, then its depth once it exists', async () => {
    const queue = `monitor.depth-test-${randomUUID()}`;
    const depths: (number | undefined)[] = [];
    logLines.length = 0;
    const session = startSession(depths, env.rabbitUrl, queue);
    const conn = await amqp.connect(env.rabbitUrl);
    try {
      await waitUntil(() => session.isReady() && depths.filter((d) => d === undefined).length >= 3, {
        message: 'the depth read three times while the queue is missing',
      });
      const ch = await conn.createConfirmChannel();
      await ch.assertQueue(queue, { durable: false, autoDelete: false });
      for (let i = 0; i < 3; i++) ch.sendToQueue(queue, Buffer.from('x'));
      await ch.waitForConfirms();
      await waitUntil(() => depths.at(-1) === 3, { message: 'the depth of the queue once it exists' });
      expect(session.isReady()).toBe(true);
      expect(logLines.filter((l) => /reconnecting|channel error/.test(l.msg ?? ''))).toEqual([]);
      await ch.deleteQueue(queue);
    } finally {
      await session.stop();
      await conn.close();
    }
  });
});
