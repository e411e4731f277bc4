/**
 * The relay swapped for Debezium, as far as the services can tell: every event reaching `saga.events` is shaped
 * byte for byte as Debezium Server emits it with docs/debezium's configuration (test/support/debezium.ts says
 * where each detail is documented), and whole sagas complete on them, each message arriving twice.
 *
 * Debezium itself (Java) does not run here. The outbox rows come from real change data capture instead: the relay
 * streams them into an exchange of the test's own, and a bridge rebuilds each row (id, aggregatetype, aggregateid,
 * type, the payload as PostgreSQL's jsonb text, the headers column) and publishes what Debezium would for it.
 *
 * Also schema evolution: an OrderPlaced v1 and a v2 published by another producer are both handled.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { assertEventTopology } from '@saga/common/messaging/topology';
import { DEBEZIUM_HEADER } from '@saga/common/messaging/debezium';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { isServiceName } from '@saga/common/contracts/service-names';
import { collect } from '../support/amqp';
import { debeziumConfig, debeziumMessage, jsonbText, type OutboxRow } from '../support/debezium';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { killAll } from '../support/process';
import { sagaClient, uniq } from '../support/saga';
import { startStack, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

/** Where the relay publishes here: an exchange only the bridge reads. */
const CAPTURE = 'capture.events';

let env: TestEnv;
let stack: Stack;
let bridgeConn: ChannelModel;
let sink: Awaited<ReturnType<typeof collect>>;
let capture: Awaited<ReturnType<typeof collect>>;
let bridged = 0;
/** Set before the bridge's connection closes: confirms still outstanding then fail, and there is nothing left to nack (the bridge's exclusive queue goes with its connection). */
let bridgeClosing = false;
const url = (s: 'order' | 'inventory' | 'payment') => stack.services[s].url;
const saga = sagaClient(() => ({ order: url('order'), inventory: url('inventory'), payment: url('payment') }));

/** The outbox row a relay message was made from (the relay adds the aggregate and source headers to the row's). */
function rowOf(msg: ConsumeMessage): { source: string; row: OutboxRow } {
  const {
    [HEADER.aggregateType]: aggregatetype,
    [HEADER.aggregateId]: aggregateid,
    [HEADER.source]: source,
    ...rowHeaders
  } = msg.properties.headers as Record<string, unknown>;
  return {
    source: String(source),
    row: {
      id: msg.properties.messageId as string,
      aggregatetype: String(aggregatetype),
      aggregateid: String(aggregateid),
      type: msg.properties.type as string,
      // The relay forwards the payload as PostgreSQL sent it: Debezium receives the same text from pgoutput.
      payload: msg.content.toString('utf8'),
      headers: jsonbText(rowHeaders),
    },
  };
}

beforeAll(async () => {
  env = await createTestEnv('debezium');
  stack = await startStack(env, { relay: { EVENTS_EXCHANGE: CAPTURE } });
  sink = await collect(env.rabbitUrl, env.exchange);
  capture = await collect(env.rabbitUrl, CAPTURE);
  bridgeConn = await amqp.connect(env.rabbitUrl);
  const ch = await bridgeConn.createConfirmChannel();
  await assertEventTopology(ch, CAPTURE);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(queue, CAPTURE, '#');
  await ch.prefetch(100);
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    const { source, row } = rowOf(msg);
    if (!isServiceName(source)) throw new Error(`no Debezium configuration for source ${source}`);
    const m = debeziumMessage(row, debeziumConfig(source).get('debezium.transforms.outbox.route.topic.replacement')!);
    // Twice: at-least-once delivery, and the inbox must apply it once.
    ch.publish(env.exchange, m.routingKey, m.content, m.options);
    ch.publish(env.exchange, m.routingKey, m.content, m.options);
    ch.waitForConfirms().then(
      () => {
        bridged++;
        ch.ack(msg);
      },
      () => {
        if (!bridgeClosing) ch.nack(msg);
      },
    );
  });
});
afterAll(async () => {
  bridgeClosing = true;
  await bridgeConn?.close().catch(() => undefined);
  await sink?.close();
  await capture?.close();
  await stack?.stop();
  await killAll();
  await env?.close();
});

describe('the saga on Debezium-shaped messages', () => {
  it('confirms one order and compensates another, every message delivered twice and applied once', async () => {
    const sku = await saga.product(10, 700);
    const rich = await saga.account(100_000);
    const poor = await saga.account(100);
    const duplicatesBefore = await metricValue(stack.services.inventory.adminUrl, 'consumer_messages_total', {
      outcome: 'duplicate',
    });
    const [ok, declined] = await Promise.all([
      saga.place(rich, [{ sku, quantity: 2 }]),
      saga.place(poor, [{ sku, quantity: 1 }]),
    ]);
    const [okView, declinedView] = await Promise.all([saga.finalOrder(ok), saga.finalOrder(declined)]);
    expect(okView).toMatchObject({ status: 'CONFIRMED', totalCents: 1400 });
    expect(okView.history.map((h) => h.type)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentAuthorized',
      'OrderConfirmed',
    ]);
    expect(declinedView).toMatchObject({ status: 'CANCELLED', reason: 'PAYMENT_DECLINED' });
    // Stock sold for the first, released for the second; balances add up; no event applied twice.
    await saga.expectInvariants();
    expect(await saga.getBalance(rich)).toBe(100_000 - 1400);

    // What the services consumed was Debezium's shape only: no AMQP message id or type, the id in a header.
    // Five events per order, each sent twice.
    const ofOrders = () =>
      sink.messages.filter((m) =>
        [ok, declined].includes(String(m.headers[DEBEZIUM_HEADER.aggregateId] ?? '').replaceAll('"', '')),
      );
    const mine = await waitUntil(() => (ofOrders().length >= 2 * 5 * 2 ? ofOrders() : undefined), {
      message: 'every event of both orders on saga.events',
    });
    for (const m of mine) {
      expect(m.id).toBeUndefined();
      expect(m.type).toBeUndefined();
      expect(m.raw.properties.correlationId).toBeUndefined();
      expect(m.headers[DEBEZIUM_HEADER.id]).toMatch(/^"[0-9a-f-]{36}"$/);
    }
    // Inventory saw each of its messages twice (OrderPlaced and OrderConfirmed or OrderCancelled per order).
    await waitUntil(
      async () =>
        (await metricValue(stack.services.inventory.adminUrl, 'consumer_messages_total', { outcome: 'duplicate' })) -
          duplicatesBefore >=
        4,
      { message: 'inventory counted the duplicates' },
    );
    expect(bridged).toBeGreaterThan(0);
  });
});

describe('schema evolution', () => {
  it('handles an OrderPlaced v1 and a v2 of the same saga step alike', async () => {
    // An unknown sku: inventory answers StockRejected naming the sku it read, from `items` (v1) or `lines` (v2).
    const sku = uniq('nosuch');
    const v1 = { orderId: randomUUID(), customerId: 'c', items: [{ sku, quantity: 1 }] };
    const v2 = { orderId: randomUUID(), customerId: 'c', lines: [{ sku, quantity: 1 }] };
    const ch = await bridgeConn.createConfirmChannel();
    for (const [version, data] of [
      [1, v1],
      [2, v2],
    ] as const) {
      ch.publish(env.exchange, 'order.OrderPlaced', Buffer.from(JSON.stringify({ version, data })), {
        messageId: randomUUID(),
        type: 'OrderPlaced',
        correlationId: data.orderId,
        contentType: 'application/json',
        persistent: true,
        headers: {
          correlationId: data.orderId,
          causationId: null,
          [HEADER.aggregateType]: 'order',
          [HEADER.aggregateId]: data.orderId,
        },
      });
    }
    await ch.waitForConfirms();
    await ch.close();
    const orderIds: string[] = [v1.orderId, v2.orderId];
    const rejected = await waitUntil(
      () => {
        const r = capture.messages.filter((m) => m.type === 'StockRejected' && orderIds.includes(m.correlationId!));
        return r.length === 2 ? r : undefined;
      },
      { message: 'StockRejected for both versions' },
    );
    for (const r of rejected) expect(r.body).toMatchObject({ version: 1, data: { reason: 'UNKNOWN_PRODUCT', sku } });
  });
});
