import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { assertEventTopology } from '@saga/common/messaging/topology';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { rabbitmqctl } from './env';
import { waitUntil } from './wait';

export type Received = {
  id: string | undefined;
  routingKey: string;
  type: string | undefined;
  source: string | undefined;
  aggregateId: string | undefined;
  correlationId: string | undefined;
  headers: Record<string, unknown>;
  body: unknown;
  /** As received, to publish again unchanged. */
  raw: { content: Buffer; properties: ConsumeMessage['properties'] };
};

/** A queue bound to every routing key of the exchange (or to one queue by name), collecting what arrives, in order. */
export async function collect(rabbitUrl: string, exchange: string, opts: { queue?: string; bindingKey?: string } = {}) {
  const conn: ChannelModel = await amqp.connect(rabbitUrl);
  const ch = await conn.createChannel();
  await assertEventTopology(ch, exchange);
  let queue = opts.queue;
  if (!queue) {
    queue = (await ch.assertQueue('', { exclusive: true, autoDelete: true })).queue;
    await ch.bindQueue(queue, exchange, opts.bindingKey ?? '#');
  }
  const messages: Received[] = [];
  await ch.prefetch(2000);
  await ch.consume(
    queue,
    (msg: ConsumeMessage | null) => {
      if (!msg) return;
      const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
      let body: unknown;
      try {
        body = JSON.parse(msg.content.toString());
      } catch {
        body = msg.content.toString();
      }
      messages.push({
        id: msg.properties.messageId,
        routingKey: msg.fields.routingKey,
        type: msg.properties.type,
        source: headers[HEADER.source] as string | undefined,
        aggregateId: headers[HEADER.aggregateId] as string | undefined,
        correlationId: msg.properties.correlationId,
        headers,
        body,
        raw: { content: msg.content, properties: msg.properties },
      });
      ch.ack(msg);
    },
    { noAck: false },
  );
  return {
    messages,
    /**
     * Resolves once the queue holds nothing more for this sink. The check is a round trip on the consuming channel:
     * deliveries the broker sent before its answer have been received when the answer arrives.
     */
    drained: () =>
      waitUntil(async () => (await ch.checkQueue(queue!)).messageCount === 0, { message: 'sink queue drained' }),
    async close() {
      await conn.close().catch(() => undefined);
    },
  };
}

/** Forcibly close the broker connections of one vhost whose client name starts with `namePrefix`. Returns how many. */
export function closeConnections(vhost: string, namePrefix: string): number {
  const out = rabbitmqctl('list_connections', '--no-table-headers', 'pid', 'vhost', 'client_properties');
  let n = 0;
  for (const line of out.split('\n')) {
    const [pid, v, props] = line.split('\t');
    const name = /\{"connection_name","([^"]*)"\}/.exec(props ?? '')?.[1];
    if (pid && v === vhost && name?.startsWith(namePrefix)) {
      try {
        rabbitmqctl('close_connection', pid, 'closed by test');
        n++;
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return n;
}
