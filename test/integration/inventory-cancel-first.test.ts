/**
 * The events of one saga travel on different paths: inventory can see an order's cancel before its placement. The
 * cancel is recorded, so the later reserve holds nothing for an order that is over.
 */
import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import pg from 'pg';
import { createTestEnv, type TestEnv } from '../support/env';
import { appliedCount, inventoryConsumer, publishOrderEvent } from '../support/consumer-harness';
import { waitUntil } from '../support/wait';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('cancelfirst');
});
afterAll(async () => {
  await env?.close();
});

describe('inventory: a cancel before the reservation', () => {
  it('a reserve that arrives after the order was cancelled holds no stock', async () => {
    const admin = new pg.Client({ connectionString: env.adminUrl('inventory') });
    await admin.connect();
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createConfirmChannel();
    const c = inventoryConsumer(env, env.serviceUrl('inventory'));
    try {
      const sku = `sku-${randomUUID().slice(0, 8)}`;
      await admin.query('INSERT INTO products (sku, name, price_cents, available) VALUES ($1, $1, 100, 10)', [sku]);
      c.consumer.start();
      await waitUntil(() => c.consumer.isReady(), { message: 'consuming' });
      const orderId = randomUUID();
      const cancel = publishOrderEvent(ch, env.exchange, 'OrderCancelled', {
        orderId,
        reason: 'PAYMENT_DECLINED',
        detail: null,
      });
      await ch.waitForConfirms();
      await waitUntil(async () => (await appliedCount(env, [cancel])) === 1, { message: 'cancel applied' });
      const place = publishOrderEvent(ch, env.exchange, 'OrderPlaced', {
        orderId,
        customerId: 'c-cancel-first',
        items: [{ sku, quantity: 3 }],
      });
      await ch.waitForConfirms();
      await waitUntil(async () => (await appliedCount(env, [place])) === 1, { message: 'placement applied' });
      const { rows } = await admin.query<{ available: number; reserved: number }>(
        'SELECT available, reserved FROM products WHERE sku = $1',
        [sku],
      );
      expect(rows[0]).toEqual({ available: 10, reserved: 0 });
      const held = await admin.query('SELECT 1 FROM reservations WHERE order_id = $1', [orderId]);
      expect(held.rowCount).toBe(0);
    } finally {
      await c.stop();
      await conn.close();
      await admin.end();
    }
  });
});
