/**
 * The saga end to end: relay and three services as separate processes over real PostgreSQL and RabbitMQ.
 * After every test the invariants hold for everything placed so far:
 *   initial stock = available + confirmed quantities (and nothing left reserved);
 *   initial balance = balance + confirmed totals.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import pg from 'pg';
import { consumerQueueNames } from '@saga/common/messaging/topology';
import { parseTraceparent } from '@saga/common/runtime/trace-context';
import { collect, type Received } from '../support/amqp';
import { createTestEnv, type TestEnv } from '../support/env';
import { conformanceProblems, recorded } from '../support/openapi-conformance';
import { metricValue } from '../support/metrics';
import { killAll } from '../support/process';
import { as, sagaClient, uniq, type OrderView } from '../support/saga';
import { http, startStack, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';
import { brokerUser } from '@saga/common/messaging/publisher-trust';

let env: TestEnv;
let stack: Stack;
let sink: Awaited<ReturnType<typeof collect>>;
const url = (s: 'order' | 'inventory' | 'payment') => stack.services[s].url;
const saga = sagaClient(() => ({ order: url('order'), inventory: url('inventory'), payment: url('payment') }));
const { product, account, place, finalOrder, getProduct, getBalance } = saga;
const types = (v: OrderView) => v.history.map((h) => h.type);

beforeAll(async () => {
  env = await createTestEnv('saga');
  // Inbox pruning checked every 100 ms while messages flow (a minute in production), so the retention test is quick.
  const fastPrune = { INBOX_PRUNE_EVERY_MS: '100' };
  stack = await startStack(env, { order: fastPrune, inventory: fastPrune, payment: fastPrune });
  sink = await collect(env.rabbitUrl, env.exchange);
});
afterEach(async () => {
  await saga.expectInvariants();
});
afterAll(async () => {
  await sink?.close();
  await stack?.stop();
  await killAll();
  await env?.close();
});

describe('the order saga', () => {
  it('confirms an order that stock and balance cover', async () => {
    const a = await product(10, 1500);
    const b = await product(5, 250);
    const c = await account(50_000);
    const id = await place(c, [
      { sku: a, quantity: 2 },
      { sku: b, quantity: 1 },
    ]);
    const v = await finalOrder(id);
    expect(v).toMatchObject({
      orderId: id,
      customerId: c,
      status: 'CONFIRMED',
      reason: null,
      totalCents: 3250,
      items: [
        { sku: a, quantity: 2, priceCents: 1500 },
        { sku: b, quantity: 1, priceCents: 250 },
      ],
    });
    expect(types(v)).toEqual(['OrderPlaced', 'StockReserved', 'PaymentAuthorized', 'OrderConfirmed']);
    expect(await getBalance(c)).toBe(50_000 - 3250);
    await waitUntil(async () => (await getProduct(a)).reserved === 0);
    expect(await getProduct(a)).toMatchObject({ available: 8, reserved: 0 });
    const payments = await http<{ payments: { status: string; amountCents: number }[] }>(
      'GET',
      `${url('payment')}/payments?orderId=${id}`,
    );
    expect(payments.body.payments).toMatchObject([{ status: 'AUTHORIZED', amountCents: 3250 }]);
    // Every event of the saga carries the order id as correlation id and names its cause.
    const mine = await waitUntil(() => {
      const m = sink.messages.filter((x) => x.correlationId === id);
      return m.some((x) => x.type === 'StockCommitted') ? m : undefined;
    });
    expect(mine.map((m) => m.type).sort()).toEqual([
      'OrderConfirmed',
      'OrderPlaced',
      'PaymentAuthorized',
      'StockCommitted',
      'StockReserved',
    ]);
    const placedMsg = mine.find((m) => m.type === 'OrderPlaced')!;
    expect(placedMsg.headers.causationId).toBeNull();
    expect(mine.find((m) => m.type === 'StockReserved')!.headers.causationId).toBe(placedMsg.id);
    // Tracing is off here (no OTEL_* exporter): every event still carries the order's one trace id, each with the
    // span id of the step that caused it.
    const contexts = mine.map((m) => parseTraceparent(m.headers.traceparent));
    expect(new Set(contexts.map((c) => c?.traceId)).size).toBe(1);
    expect(contexts[0]?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(contexts.map((c) => c?.spanId)).size).toBe(mine.length);
  });

  it("cancels OUT_OF_STOCK and leaves the other lines' stock alone", async () => {
    const a = await product(10, 100);
    const b = await product(3, 100);
    const c = await account(100_000);
    const v = await finalOrder(
      await place(c, [
        { sku: a, quantity: 1 },
        { sku: b, quantity: 4 },
      ]),
    );
    expect(v).toMatchObject({ status: 'CANCELLED', reason: 'OUT_OF_STOCK', totalCents: null });
    expect(v.history).toMatchObject([
      { type: 'OrderPlaced' },
      { type: 'StockRejected', reason: 'OUT_OF_STOCK' },
      { type: 'OrderCancelled', reason: 'OUT_OF_STOCK' },
    ]);
    expect(await getProduct(a)).toMatchObject({ available: 10, reserved: 0 });
    expect(await getProduct(b)).toMatchObject({ available: 3, reserved: 0 });
    expect(await getBalance(c)).toBe(100_000);
  });

  it('cancels UNKNOWN_PRODUCT', async () => {
    const a = await product(10, 100);
    const c = await account(100_000);
    const v = await finalOrder(
      await place(c, [
        { sku: a, quantity: 1 },
        { sku: uniq('missing'), quantity: 1 },
      ]),
    );
    expect(v).toMatchObject({ status: 'CANCELLED', reason: 'UNKNOWN_PRODUCT' });
    expect(types(v)).toEqual(['OrderPlaced', 'StockRejected', 'OrderCancelled']);
    expect(await getProduct(a)).toMatchObject({ available: 10, reserved: 0 });
  });

  it.each([
    ['insufficient funds', 1_000, 2, 'INSUFFICIENT_FUNDS'],
    ['the per-payment limit', 10_000_000, 80, 'LIMIT_EXCEEDED'],
  ])('cancels PAYMENT_DECLINED for %s, releasing the reservation', async (_what, balance, qty, declined) => {
    const a = await product(100, 1500);
    const c = await account(balance);
    const v = await finalOrder(await place(c, [{ sku: a, quantity: qty }]));
    expect(v).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED', totalCents: 1500 * qty });
    expect(v.history).toMatchObject([
      { type: 'OrderPlaced' },
      { type: 'StockReserved' },
      { type: 'PaymentDeclined', reason: declined },
      { type: 'OrderCancelled', reason: 'PAYMENT_DECLINED' },
    ]);
    await waitUntil(async () => (await getProduct(a)).available === 100, { message: 'stock released' });
    expect(await getProduct(a)).toMatchObject({ available: 100, reserved: 0 });
    expect(await getBalance(c)).toBe(balance);
    await waitUntil(() => sink.messages.some((m) => m.correlationId === v.orderId && m.type === 'StockReleased'), {
      message: 'StockReleased',
    });
  });

  it('cancels UNKNOWN_CUSTOMER when payment finds no account', async () => {
    const a = await product(10, 100);
    const v = await finalOrder(await place(uniq('nobody'), [{ sku: a, quantity: 1 }]));
    expect(v).toMatchObject({ status: 'CANCELLED', reason: 'UNKNOWN_CUSTOMER' });
    expect(v.history).toMatchObject([
      { type: 'OrderPlaced' },
      { type: 'StockReserved' },
      { type: 'PaymentDeclined', reason: 'UNKNOWN_CUSTOMER' },
      { type: 'OrderCancelled' },
    ]);
    await waitUntil(async () => (await getProduct(a)).available === 10, { message: 'stock released' });
  });

  it('creates one order for one Idempotency-Key, and refuses the key with another body', async () => {
    const a = await product(10, 100);
    const c = await account(100_000);
    const key = uniq('key');
    const first = await place(c, [{ sku: a, quantity: 1 }], { 'Idempotency-Key': key });
    const again = await http<{ orderId: string }>(
      'POST',
      `${url('order')}/orders`,
      { customerId: c, items: [{ sku: a, quantity: 1 }] },
      as(c, { 'Idempotency-Key': key }),
    );
    expect(again.status).toBe(202);
    expect(again.body.orderId).toBe(first);
    const other = await http<{ error: string }>(
      'POST',
      `${url('order')}/orders`,
      { customerId: c, items: [{ sku: a, quantity: 2 }] },
      as(c, { 'Idempotency-Key': key }),
    );
    expect(other.status).toBe(409);
    await finalOrder(first);
    const list = await http<{ orders: { customerId: string }[] }>(
      'GET',
      `${url('order')}/orders?limit=100`,
      undefined,
      as(c),
    );
    expect(list.body.orders.map((o) => o.customerId)).toEqual([c]);
  });

  it('applies every event type once when it is delivered twice', async () => {
    const a = await product(10, 100);
    const c = await account(100_000);
    const ok = await finalOrder(await place(c, [{ sku: a, quantity: 1 }]));
    const rejected = await finalOrder(await place(c, [{ sku: a, quantity: 50 }]));
    expect([ok.status, rejected.reason]).toEqual(['CONFIRMED', 'OUT_OF_STOCK']);
    const poor = await account(50);
    const poorOrder = await finalOrder(await place(poor, [{ sku: a, quantity: 1 }]));
    expect(poorOrder.reason).toBe('PAYMENT_DECLINED');
    const ids = new Set([ok.orderId, rejected.orderId, poorOrder.orderId]);
    const originals = await waitUntil(
      () => {
        const m = sink.messages.filter((x) => ids.has(x.correlationId!));
        const t = new Set(m.map((x) => x.type));
        return ['StockCommitted', 'StockReleased', 'PaymentDeclined', 'StockRejected'].every((x) => t.has(x))
          ? m
          : undefined;
      },
      { message: 'every event type of the three orders' },
    );
    const handledBy: Record<string, ('order' | 'inventory' | 'payment')[]> = {
      OrderPlaced: ['inventory'],
      OrderConfirmed: ['inventory'],
      OrderCancelled: ['inventory'],
      StockReserved: ['order', 'payment'],
      StockRejected: ['order'],
      PaymentAuthorized: ['order'],
      PaymentDeclined: ['order'],
    };
    const expectedDupes = { order: 0, inventory: 0, payment: 0 };
    for (const m of originals) for (const s of handledBy[m.type!] ?? []) expectedDupes[s]++;
    expect(new Set(originals.map((m) => m.type)).size).toBeGreaterThanOrEqual(9);
    const before = Object.fromEntries(
      await Promise.all(
        (['order', 'inventory', 'payment'] as const).map(async (s) => [
          s,
          await metricValue(stack.services[s].adminUrl, 'consumer_messages_total', { outcome: 'duplicate' }),
        ]),
      ),
    );
    const snapshot = async () => ({
      orders: await Promise.all(
        [...ids].map(
          async (id) => (await http('GET', `${url('order')}/orders/${id}`, undefined, saga.asOwnerOf(id))).body,
        ),
      ),
      stock: await getProduct(a),
      balances: [await getBalance(c), await getBalance(poor)],
      messages: sink.messages.filter((x) => ids.has(x.correlationId!)).length,
    });
    const state = await snapshot();
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    for (const m of originals)
      ch.publish(env.exchange, m.routingKey, m.raw.content, m.raw.properties as amqp.Options.Publish);
    await ch.waitForConfirms();
    await conn.close();
    for (const s of ['order', 'inventory', 'payment'] as const) {
      await waitUntil(
        async () =>
          (await metricValue(stack.services[s].adminUrl, 'consumer_messages_total', { outcome: 'duplicate' })) -
            before[s]! >=
          expectedDupes[s],
        { message: `${s} saw the duplicates` },
      );
    }
    const after = await snapshot();
    expect(after).toEqual({ ...state, messages: state.messages + originals.length });
  });

  it('dead-letters a malformed message with its reason, and the next order still completes', async () => {
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    const bad = [
      { service: 'inventory', type: 'OrderPlaced', body: 'not json {', reason: 'body is not valid JSON' },
      {
        service: 'payment',
        type: 'StockReserved',
        body: JSON.stringify({ version: 1, data: { orderId: randomUUID() } }),
        reason: 'customerId',
      },
      {
        service: 'order',
        type: 'PaymentDeclined',
        body: JSON.stringify({ version: 7, data: {} }),
        reason: 'unknown event PaymentDeclined v7',
      },
    ] as const;
    const dlqs = await Promise.all(
      bad.map((b) => collect(env.rabbitUrl, env.exchange, { queue: consumerQueueNames(`${b.service}.events`).dlq })),
    );
    for (const b of bad) {
      ch.sendToQueue(`${b.service}.events`, Buffer.from(b.body), {
        messageId: randomUUID(),
        type: b.type,
        correlationId: randomUUID(),
        headers: { 'x-aggregate-type': 'test', 'x-aggregate-id': 'x', causationId: null },
        persistent: true,
        userId: brokerUser(env.rabbitUrl), // the shared user the consumers trust in this test
      });
    }
    await ch.waitForConfirms();
    await conn.close();
    for (const [i, b] of bad.entries()) {
      const dead: Received = await waitUntil(() => dlqs[i]!.messages[0], { message: `${b.service} dead letter` });
      expect(dead.headers['x-dead-letter-reason']).toBe('invalid');
      expect(String(dead.headers['x-dead-letter-error'])).toContain(b.reason);
      expect(dead.type).toBe(b.type);
      await dlqs[i]!.close();
    }
    const a = await product(10, 100);
    const c = await account(10_000);
    expect((await finalOrder(await place(c, [{ sku: a, quantity: 1 }]))).status).toBe('CONFIRMED');
  });

  it('sells exactly the stock to 60 concurrent orders: 10 CONFIRMED, 50 OUT_OF_STOCK', async () => {
    const a = await product(10, 100);
    const c = await account(10_000_000);
    const ids = await Promise.all(Array.from({ length: 60 }, () => place(c, [{ sku: a, quantity: 1 }])));
    const views = await Promise.all(ids.map((id) => finalOrder(id, 90_000)));
    expect(views.filter((v) => v.status === 'CONFIRMED')).toHaveLength(10);
    expect(views.filter((v) => v.status === 'CANCELLED' && v.reason === 'OUT_OF_STOCK')).toHaveLength(50);
    await waitUntil(async () => (await getProduct(a)).reserved === 0);
    expect(await getProduct(a)).toMatchObject({ available: 0, reserved: 0 });
    expect(await getBalance(c)).toBe(10_000_000 - 10 * 100);
  });

  it('forgets inbox rows older than the retention while messages flow, and keeps recent ones', async () => {
    const admin = new pg.Client({ connectionString: env.adminUrl('inventory') });
    await admin.connect();
    try {
      const old = randomUUID();
      const recent = randomUUID();
      await admin.query(
        `INSERT INTO inbox (consumer, message_id, event_type, processed_at) VALUES
           ('inventory.events', $1, 'OrderPlaced', now() - interval '169 hours'), ('inventory.events', $2, 'OrderPlaced', now() - interval '167 hours')`,
        [old, recent],
      );
      const left = async () =>
        (await admin.query('SELECT message_id FROM inbox WHERE message_id = ANY($1)', [[old, recent]])).rows.map(
          (r) => r.message_id,
        );
      // Messages flow: the inventory consumer prunes what is older than the default retention (168 hours).
      await waitUntil(
        async () => {
          await finalOrder(await place(await account(10_000), [{ sku: await product(5, 100), quantity: 1 }]));
          return !(await left()).includes(old);
        },
        { message: 'the old inbox row pruned', timeoutMs: 30_000 },
      );
      expect(await left()).toEqual([recent]);
    } finally {
      await admin.end();
    }
  });

  it("streams an order's history as server-sent events and ends when it is final", async () => {
    const a = await product(10, 100);
    const c = await account(10_000);
    const id = await place(c, [{ sku: a, quantity: 1 }]);
    const res = await fetch(`${url('order')}/orders/${id}/events`, { headers: as(c) });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text(); // resolves only when the server ends the stream
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events).toEqual(['OrderPlaced', 'StockReserved', 'PaymentAuthorized', 'OrderConfirmed', 'end']);
    const end = JSON.parse(/event: end\ndata: (.*)\n/.exec(text)![1]!);
    expect(end).toMatchObject({ orderId: id, status: 'CONFIRMED' });
  });
});

describe('the HTTP contract', () => {
  it('every answer the tests above received conforms to the OpenAPI document its service serves', async () => {
    expect(recorded.length).toBeGreaterThan(50);
    expect([...new Set(recorded.map((x) => x.status))]).toEqual(expect.arrayContaining([200, 202, 409]));
    expect(await conformanceProblems(recorded)).toEqual([]);
    // The check can fail: an undocumented status, and a body the schema refuses.
    const placed = recorded.find((x) => x.status === 202)!;
    expect(
      await conformanceProblems([
        { ...placed, status: 418 },
        { ...placed, body: { orderId: 'not-a-uuid' } },
      ]),
    ).toHaveLength(2);
  });

  it('serves each document as a page to read, with no script and nothing from elsewhere', async () => {
    for (const s of ['order', 'inventory', 'payment'] as const) {
      const doc = (await (await fetch(`${url(s)}/openapi.json`)).json()) as {
        paths: Record<string, Record<string, unknown>>;
      };
      const res = await fetch(`${url(s)}/docs`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      const html = await res.text();
      for (const [path, methods] of Object.entries(doc.paths))
        for (const m of Object.keys(methods)) expect(html).toContain(`<code>${m.toUpperCase()} ${path}</code>`);
      expect(html).not.toMatch(/<script|src="http/);
    }
  });
});
