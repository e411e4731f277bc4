/**
 * The consumer's AMQP session: connect (the broker's next node after a lost connection), declare the consumer's
 * queues, consume with a bounded prefetch into the batching pump, and start over from a clean state whenever the
 * connection ends.
 */
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { routingKeyOf, type EventType } from '../contracts/catalog';
import { backoffDelay, delay, reconnectLoop } from '../runtime/lifecycle';
import type { Logger } from '../runtime/logger';
import { brokerConnector, closeConnection } from './broker';
import type { BatchRunner, BatchRunnerOptions, ConsumerChannel } from './batch-runner';
import { createPump } from './consumer-pump';
import { assertConsumerTopology, coalesceWrites } from './topology';

export type ConsumerSessionOptions = {
  url: string;
  exchange: string;
  queue: string;
  types: readonly EventType[];
  log: Logger;
  prefetch: number;
  maxBatch: number;
  batchIntervalMs: number;
  deliveryLimit: number;
  /** What the session hands each batch to; `hold` and `released` are the session's (see BatchRunnerOptions). */
  runner: (ports: Pick<BatchRunnerOptions, 'hold' | 'released'>) => BatchRunner;
  /** Longest wait between two tries of a batch held while the database is unavailable. */
  holdCapMs?: number;
};

export function createConsumerSession(opts: ConsumerSessionOptions) {
  const { log, queue, prefetch, maxBatch } = opts;
  // One place in the broker's node list for this consumer: after a lost connection it moves to the next node.
  const broker = brokerConnector(opts.url);
  const routingKeys = opts.types.map(routingKeyOf);
  let ready = false;
  let conn: ChannelModel | undefined;
  let ch: ConfirmChannel | undefined;
  let consumerTag: string | undefined;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  /** The connection of each channel, to close it when a batch on the channel cannot be settled. */
  const connOf = new WeakMap<ConfirmChannel, ChannelModel>();
  /** Channels that closed: a batch held on one of them is given up (the broker returns its messages). */
  const closedChannels = new WeakSet<ConsumerChannel>();
  /** A batch is held: the database is unavailable. */
  let holding = false;

  const runner = opts.runner({
    async hold(channel, err, tries) {
      if (!holding) log.warn({ err, queue }, 'database unavailable: holding the batch unacknowledged until it answers');
      holding = true;
      await delay(backoffDelay(tries, 200, opts.holdCapMs ?? 5_000), abort.signal);
      if (abort.signal.aborted || closedChannels.has(channel))
        throw new Error('gave up a held batch: the consumer is stopping or its channel closed');
    },
    released() {
      holding = false;
      log.info({ queue }, 'database answers again: held batch applied');
    },
  });

  const pump = createPump<ConfirmChannel, ConsumeMessage>(
    {
      runBatch: (channel, batch) => runner.run(channel, batch),
      abandon(channel, err, size) {
        // Not settled (a retry or dead-letter send failed, or a held batch was given up). Closing the channel
        // returns every unacknowledged message to the queue; the session reconnects after a backoff and the inbox
        // drops what was already applied.
        log.warn({ err, size }, 'could not settle batch; returning it to the queue and reconnecting');
        // Closing the whole connection, bounded: on a half-open link amqplib's close never settles, and a pump
        // awaiting it would never run again (the consumer would look ready and apply nothing).
        void closeConnection(connOf.get(channel));
      },
    },
    { maxBatch, batchIntervalMs: opts.batchIntervalMs },
  );

  function onMessage(channel: ConfirmChannel, msg: ConsumeMessage | null) {
    if (!msg) return; // consumer cancelled by the broker (queue deleted): the close handler reconnects
    pump.push(channel, msg);
  }

  async function session(): Promise<void> {
    const link = await broker.connect({ clientProperties: { connection_name: `consumer ${queue}` } });
    conn = link;
    coalesceWrites(conn);
    const closed = new Promise<void>((resolve) => {
      conn!.on('close', () => resolve());
      conn!.on('error', (err: unknown) => log.warn({ err }, 'broker connection error'));
    });
    let channel: ConfirmChannel;
    try {
      channel = await conn.createConfirmChannel();
    } catch (err) {
      await closeConnection(link);
      throw err;
    }
    connOf.set(channel, link);
    ch = channel;
    channel.on('error', (err: unknown) => log.warn({ err }, 'broker channel error'));
    channel.on('close', () => {
      ready = false;
      closedChannels.add(channel);
      // Unsettled messages of a closed channel come back from the broker; drop them here.
      pump.drop(channel);
      if (!abort.signal.aborted) void closeConnection(link);
    });
    await assertConsumerTopology(channel, {
      exchange: opts.exchange,
      queue,
      routingKeys,
      deliveryLimit: opts.deliveryLimit,
    });
    await channel.prefetch(prefetch);
    const reply = await channel.consume(queue, (msg) => onMessage(channel, msg), { noAck: false });
    consumerTag = reply.consumerTag;
    ready = true;
    log.info({ queue, routingKeys, prefetch, maxBatch, broker: link.brokerAddress }, 'consuming');
    await closed;
    ready = false;
  }

  return {
    start() {
      loop ??= reconnectLoop(session, { what: 'broker', log, signal: abort.signal });
    },
    async stop() {
      abort.abort();
      ready = false;
      try {
        if (ch && consumerTag) await ch.cancel(consumerTag);
      } catch {
        /* channel already gone */
      }
      // Finish what was delivered before the cancel: every buffered message is applied and acknowledged.
      await pump.drain();
      try {
        // A round trip first: the broker has then processed every ack sent before it, so closing returns nothing
        // that was already handled to the queue.
        await ch?.checkQueue(queue);
        await ch?.close();
      } catch {
        /* channel already gone */
      }
      await closeConnection(conn, 5_000);
      await loop;
    },
    isReady: () => ready && !holding,
  };
}
