/**
 * The order service learns an order's prices from the payment's outcome and no longer binds StockReserved. On a live
 * broker its queue was bound to it by the previous version: the service removes that binding when it starts, and a
 * StockReserved the queue still holds is recorded as before, not dead-lettered.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { routingKeyOf } from '@saga/common/contracts/catalog';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { DELIVERY_LIMIT } from '@saga/common/messaging/consumer';
import { brokerUser } from '@saga/common/messaging/publisher-trust';
import { assertConsumerTopology, consumerQueueNames } from '@saga/common/messaging/topology';
import { createTestEnv, rabbitmqctl, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { as, uniq, type OrderView } from '../support/saga';
import { http, startService, type ServiceProc } from '../support/stack';
import { waitUntil } from '../support/wait';

const QUEUE = 'order.events';
let env: TestEnv;
let order: ServiceProc | undefined;

beforeAll(async () => {
  env = await createTestEnv('retire');
});
afterAll(async () => {
  await order?.proc.kill();
  await killAll();
  await env?.close();
});

const bindingsOf = (queue: string) =>
  rabbitmqctl('list_bindings', '-p', env.vhost, '--no-table-headers', 'source_name', 'destination_name', 'routing_key')
    .split('\n')
    .map((l) => l.split('\t'))
    .filter(([source, destination]) => source === env.exchange && destination === queue)
    .map(([, , key]) => key)
    .sort();

describe("a binding the order service's queue no longer wants", () => {
  it('is removed when the service starts, and what the queue still holds of it is applied', async () => {
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    try {
      // The queue as the previous version left it: bound to StockReserved as well.
      const before = ['StockReserved', 'StockRejected', 'PaymentAuthorized', 'PaymentDeclined'] as const;
      await assertConsumerTopology(ch, {
        exchange: env.exchange,
        queue: QUEUE,
        routingKeys: before.map(routingKeyOf),
        deliveryLimit: DELIVERY_LIMIT,
      });
      expect(bindingsOf(QUEUE)).toContain('inventory.StockReserved');

      order = await startService(env, 'order');
      expect(bindingsOf(QUEUE)).toEqual(
        ['StockRejected', 'PaymentAuthorized', 'PaymentDeclined'].map((t) => routingKeyOf(t as never)).sort(),
      );

      // An order placed before the upgrade, with its StockReserved still in the queue.
      const customerId = uniq('cust');
      const sku = uniq('sku');
      const placed = await http<{ orderId: string }>(
        'POST',
        `${order.url}/orders`,
        { customerId, items: [{ sku, quantity: 3 }] },
        as(customerId),
      );
      expect(placed.status).toBe(202);
      const { orderId } = placed.body;
      const reserved = encodeOutboxRow(
        {
          id: randomUUID(),
          aggregatetype: 'inventory',
          aggregateid: orderId,
          type: 'StockReserved',
          payload: {
            version: 1,
            data: { orderId, customerId, lines: [{ sku, quantity: 3, priceCents: 700 }], totalCents: 2100 },
          },
          headers: { correlationId: orderId, causationId: null },
        },
        'inventory',
        'outbox',
      );
      if (!reserved.ok) throw new Error(reserved.reason);
      ch.sendToQueue(QUEUE, reserved.content, { ...reserved.options, userId: brokerUser(env.rabbitUrl) });
      await ch.waitForConfirms();

      const view = await waitUntil(
        async () => {
          const r = await http<OrderView>('GET', `${order!.url}/orders/${orderId}`, undefined, as(customerId));
          return r.body.history?.some((h) => h.type === 'StockReserved') ? r.body : undefined;
        },
        { message: 'StockReserved recorded' },
      );
      expect(view).toMatchObject({
        status: 'PENDING',
        totalCents: 2100,
        items: [{ sku, quantity: 3, priceCents: 700 }],
      });
      expect((await ch.checkQueue(consumerQueueNames(QUEUE).dlq)).messageCount).toBe(0);
    } finally {
      await conn.close();
    }
  });
});
