/**
 * Baseline only (bench/): the usual polling outbox publisher, to compare the relay against. Every
 * POLL_INTERVAL_MS: SELECT … FOR UPDATE SKIP LOCKED a batch, publish it with confirms, DELETE it, COMMIT; a full
 * batch polls again at once. Counts its own queries on the outbox.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { assertEventTopology } from '@saga/common/messaging/topology';

async function main() {
  const url = process.env.DATABASE_URL!;
  const interval = Number(process.env.POLL_INTERVAL_MS ?? 100);
  const batch = Number(process.env.POLL_BATCH ?? 500);
  const exchange = process.env.EVENTS_EXCHANGE ?? 'saga.events';
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const conn = await amqp.connect(process.env.RABBITMQ_URL!);
  const ch = await conn.createConfirmChannel();
  await assertEventTopology(ch, exchange);
  let queries = 0;
  let stopping = false;
  process.on('SIGTERM', () => (stopping = true));
  const report = setInterval(() => process.stdout.write(`${JSON.stringify({ queries })}\n`), 200);
  while (!stopping) {
    await client.query('BEGIN');
    const { rows } = await client.query<{
      id: string;
      aggregatetype: string;
      type: string;
      payload: unknown;
      headers: Record<string, unknown>;
    }>(
      'SELECT id, aggregatetype, type, payload, headers FROM outbox ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED',
      [batch],
    );
    queries++;
    for (const r of rows) {
      ch.publish(exchange, `${r.aggregatetype}.${r.type}`, Buffer.from(JSON.stringify(r.payload)), {
        persistent: true,
        messageId: r.id,
        type: r.type,
        headers: r.headers,
        contentType: 'application/json',
      });
    }
    if (rows.length) {
      await ch.waitForConfirms();
      await client.query('DELETE FROM outbox WHERE id = ANY($1::uuid[])', [rows.map((r) => r.id)]);
      queries++;
    }
    await client.query('COMMIT');
    if (rows.length < batch) await new Promise((r) => setTimeout(r, interval));
  }
  clearInterval(report);
  process.stdout.write(`${JSON.stringify({ queries })}\n`);
  await conn.close();
  await client.end();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
