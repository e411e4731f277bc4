/**
 * npm run dlq -- list|show|replay <service> [messageId]
 *   list    the dead-lettered messages of <service> (order|inventory|payment), with their reasons
 *   show    one message in full (properties, headers, body)
 *   replay  send them (or one) back to the service's queue after a fix; idempotent thanks to the inbox
 * Reading does not consume: unacknowledged messages return to the dead-letter queue when the tool exits.
 */
import amqp, { type GetMessage } from 'amqplib';
import { z } from 'zod';
import { consumerQueueNames, sendConfirmed } from '@saga/common/amqp';
import { BaseEnv, parseEnv } from '@saga/common/config';

const Args = z.tuple([z.enum(['list', 'show', 'replay']), z.enum(['order', 'inventory', 'payment'])]).rest(z.string().uuid());

/** Headers our consumer adds on the way to the DLQ or the retry queue; removed on replay. */
const INTERNAL = /^x-(dead-letter|dead-lettered|original|attempt|last-error|death|first-death|last-death|delivery-count)/;

async function main() {
  const parsed = Args.safeParse(process.argv.slice(2));
  if (!parsed.success) {
    console.error('usage: npm run dlq -- list|show|replay <order|inventory|payment> [messageId]');
    process.exit(2);
  }
  const [command, service, messageId] = parsed.data;
  const config = parseEnv(BaseEnv, process.env);
  const names = consumerQueueNames(`${service}.events`);
  const conn = await amqp.connect(config.RABBITMQ_URL, { clientProperties: { connection_name: 'dlq tool' } });
  try {
    const ch = await conn.createConfirmChannel();
    const held: GetMessage[] = [];
    // Take every message once (unacknowledged), then decide; the rest return to the queue on close.
    for (;;) {
      const msg = await ch.get(names.dlq, { noAck: false });
      if (!msg) break;
      held.push(msg);
    }
    const chosen = held.filter((m) => !messageId || m.properties.messageId === messageId);
    if (messageId && chosen.length === 0) {
      console.error(`no message ${messageId} in ${names.dlq}`);
      process.exitCode = 1;
    }
    if (command === 'list') {
      console.log(`${held.length} message(s) in ${names.dlq}`);
      for (const m of chosen) {
        const h = m.properties.headers ?? {};
        console.log([m.properties.messageId, m.properties.type, h['x-dead-letter-reason'], h['x-dead-lettered-at'], h['x-dead-letter-error']].join('\t'));
      }
    } else if (command === 'show') {
      for (const m of chosen) {
        console.log(JSON.stringify({ properties: m.properties, fields: m.fields, body: m.content.toString('utf8') }, null, 2));
      }
    } else {
      let n = 0;
      for (const m of chosen) {
        const headers = Object.fromEntries(Object.entries(m.properties.headers ?? {}).filter(([k]) => !INTERNAL.test(k)));
        await sendConfirmed(ch, names.queue, m.content, { ...m.properties, headers, persistent: true });
        ch.ack(m);
        n++;
      }
      // A round trip on the channel before closing: the broker has then processed every ack sent before it.
      // Closing the connection right after the acks let some messages return to the queue (seen in tests).
      await ch.checkQueue(names.dlq);
      await ch.close();
      console.log(`replayed ${n} message(s) from ${names.dlq} to ${names.queue}`);
    }
  } finally {
    await conn.close();
  }
}

main().catch((err) => {
  console.error(`dlq failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
