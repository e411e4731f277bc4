/**
 * A consumer declares its queues on channels of their own. A queue that exists with other arguments (declared by an
 * earlier version, or with another delivery limit) makes the broker close the declaring channel with 406
 * PRECONDITION_FAILED; the consumer then uses the queue as it is and warns, instead of never consuming again. Values
 * that must change on existing queues belong in a policy (setup's), not in queue arguments.
 */
import type { Channel, ChannelModel } from 'amqplib';
import type { Logger } from '../runtime/logger';
import { assertEventTopology, consumerQueues } from './topology';

const isPreconditionFailed = (err: unknown) => (err as { code?: unknown } | null)?.code === 406;

/** Run `fn` on a channel of its own, closed afterwards; a channel the broker closes raises the broker's error. */
async function onChannel<T>(link: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
  const ch = await link.createChannel();
  ch.on('error', () => undefined);
  try {
    return await fn(ch);
  } finally {
    await ch.close().catch(() => undefined);
  }
}

export async function declareConsumerTopology(
  link: ChannelModel,
  opts: { exchange: string; queue: string; routingKeys: readonly string[]; deliveryLimit: number; log: Logger },
): Promise<void> {
  await onChannel(link, (ch) => assertEventTopology(ch, opts.exchange));
  for (const q of consumerQueues(opts)) {
    try {
      await onChannel(link, (ch) => ch.assertQueue(q.name, { durable: true, arguments: q.arguments }));
    } catch (err) {
      if (!isPreconditionFailed(err)) throw err;
      opts.log.warn(
        { err, queue: q.name, wanted: q.arguments },
        'queue exists with other arguments: using it as it is (set changeable values by policy)',
      );
      await onChannel(link, (ch) => ch.checkQueue(q.name));
    }
  }
  await onChannel(link, async (ch) => {
    for (const key of opts.routingKeys) await ch.bindQueue(opts.queue, opts.exchange, key);
  });
}
