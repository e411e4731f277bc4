/**
 * The closest TypeScript peer, for comparison only: pg-transactional-outbox's logical replication listener,
 * publishing each outbox message to RabbitMQ and awaiting the broker's confirm in its handler, as the library's
 * RabbitMQ example does. Full concurrency (its fastest setting), protections off (its README's base settings).
 */
import amqp from 'amqplib';
import {
  createReplicationFullConcurrencyController,
  getDisabledLogger,
  initializeReplicationMessageListener,
  type TransactionalMessage,
} from 'pg-transactional-outbox';
import { assertEventTopology } from '@saga/common/messaging/topology';

async function main() {
  const db = new URL(process.env.DATABASE_URL!);
  const clientConfig = {
    host: db.hostname,
    port: Number(db.port || 5432),
    user: decodeURIComponent(db.username),
    database: db.pathname.slice(1),
  };
  const exchange = process.env.EVENTS_EXCHANGE ?? 'saga.events';
  const conn = await amqp.connect(process.env.RABBITMQ_URL!);
  const ch = await conn.createConfirmChannel();
  await assertEventTopology(ch, exchange);
  let handled = 0;
  const [shutdown] = initializeReplicationMessageListener(
    {
      outboxOrInbox: 'outbox',
      dbListenerConfig: clientConfig,
      dbHandlerConfig: clientConfig,
      settings: {
        dbSchema: 'public',
        dbTable: 'outbox',
        dbPublication: process.env.PEER_PUBLICATION!,
        dbReplicationSlot: process.env.PEER_SLOT!,
        enableMaxAttemptsProtection: false,
        enablePoisonousMessageProtection: false,
      },
    },
    {
      handle: (message: TransactionalMessage) =>
        new Promise<void>((resolve, reject) => {
          ch.publish(
            exchange,
            `${message.aggregateType}.${message.messageType}`,
            Buffer.from(JSON.stringify(message.payload)),
            { persistent: true, messageId: message.id, type: message.messageType, contentType: 'application/json' },
            (err) => {
              if (err) return reject(err instanceof Error ? err : new Error('nack'));
              handled++;
              resolve();
            },
          );
        }),
    },
    getDisabledLogger(),
    { concurrencyStrategy: createReplicationFullConcurrencyController() },
  );
  const report = setInterval(() => process.stdout.write(`${JSON.stringify({ handled })}\n`), 20);
  process.on('SIGTERM', async () => {
    clearInterval(report);
    await shutdown();
    await conn.close().catch(() => undefined);
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
