import type { Writable } from 'node:stream';
import type { Channel, ChannelModel, Options } from 'amqplib';
import { amqpSocket } from '../runtime/library-internals';

/** Names derived from the events exchange; one definition for the relay, the services and the tests. */
export function topologyNames(exchange: string) {
  return {
    exchange,
    /** Alternate exchange: what no binding matched goes here instead of being dropped. */
    unroutableExchange: `${exchange}.unroutable`,
    unroutableQueue: `${exchange}.unroutable`,
    /** Outbox rows the relay could not turn into an event (missing id or type): kept for an operator. */
    invalidQueue: `${exchange}.invalid`,
    /**
     * Where a consumer announces each message it dead-letters (a copy, routing key = the dead-letter queue's name),
     * for observers such as the saga monitor. Nothing depends on it: the dead-letter queue itself is written directly.
     */
    deadLetterReports: `${exchange}.dead-letters`,
  };
}

const quorum = { 'x-queue-type': 'quorum' };

/**
 * Declare the durable topic exchange with its alternate exchange and the operator queues. Idempotent; the relay
 * and every service call it with the same arguments (RabbitMQ refuses a redeclaration with different ones).
 */
export async function assertEventTopology(ch: Channel, exchange: string): Promise<void> {
  const names = topologyNames(exchange);
  await ch.assertExchange(names.unroutableExchange, 'fanout', { durable: true });
  await ch.assertQueue(names.unroutableQueue, { durable: true, arguments: quorum });
  await ch.bindQueue(names.unroutableQueue, names.unroutableExchange, '');
  await ch.assertExchange(exchange, 'topic', { durable: true, alternateExchange: names.unroutableExchange });
  await ch.assertQueue(names.invalidQueue, { durable: true, arguments: quorum });
  await ch.assertExchange(names.deadLetterReports, 'topic', { durable: true });
}

export function consumerQueueNames(queue: string) {
  // The backoff queue is a quorum queue named `.backoff`. Earlier versions had a classic `.retry` queue: it lives on
  // one node (while that node is down its consumer cannot even declare it, so the service stops consuming), and an
  // existing queue cannot be redeclared as quorum. A leftover `.retry` queue still expires what it holds into the
  // work queue; delete it once empty.
  return { queue, retry: `${queue}.backoff`, dlq: `${queue}.dlq` };
}

/**
 * A consumer's queues and their arguments: its dead-letter queue, a retry queue whose messages expire back into the
 * work queue (backoff), and the durable quorum work queue. The work queue's delivery limit dead-letters a message that
 * keeps crashing the consumer process before it can be acknowledged.
 */
export function consumerQueues(opts: {
  queue: string;
  deliveryLimit: number;
}): { name: string; arguments: Record<string, unknown> }[] {
  const names = consumerQueueNames(opts.queue);
  return [
    { name: names.dlq, arguments: quorum },
    {
      name: names.retry,
      // at-least-once: an expired message leaves only once the work queue has it (quorum queues drop it otherwise).
      arguments: {
        ...quorum,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': names.queue,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      },
    },
    {
      name: names.queue,
      arguments: {
        ...quorum,
        'x-delivery-limit': opts.deliveryLimit,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': names.dlq,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      },
    },
  ];
}

/** Declare a consumer's queues (consumerQueues) and bind its work queue to the routing keys it handles. */
export async function assertConsumerTopology(
  ch: Channel,
  opts: { exchange: string; queue: string; routingKeys: readonly string[]; deliveryLimit: number },
): Promise<void> {
  await assertEventTopology(ch, opts.exchange);
  for (const q of consumerQueues(opts)) await ch.assertQueue(q.name, { durable: true, arguments: q.arguments });
  for (const key of opts.routingKeys) await ch.bindQueue(opts.queue, opts.exchange, key);
}

/** The client could not encode a message (amqplib throws on a NaN double, a header table too large): nothing sent. */
export class UnencodableMessageError extends Error {
  constructor(cause: unknown) {
    super(`cannot encode the message: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'UnencodableMessageError';
  }
}

/**
 * Promise wrapper for a confirm-channel send: resolves on the broker's ack, rejects on nack, and with an
 * UnencodableMessageError when the client cannot encode the message.
 */
export function sendConfirmed(
  ch: { sendToQueue: (q: string, c: Buffer, o: Options.Publish, cb: (err: unknown) => void) => boolean },
  queue: string,
  content: Buffer,
  options: Options.Publish,
): Promise<void> {
  return new Promise((resolve, reject) => {
    try {
      ch.sendToQueue(queue, content, options, (err) =>
        err ? reject(err instanceof Error ? err : new Error('message nacked by broker')) : resolve(),
      );
    } catch (err) {
      reject(new UnencodableMessageError(err));
    }
  });
}

/**
 * Send everything a connection writes in one turn of the event loop as one `writev` instead of a system call per
 * frame. amqplib writes each frame (a publish, an ack) to the socket as it comes; under load a process sends
 * hundreds per turn, and on a virtual machine each system call costs more than the frame. The socket is corked
 * on the first write of a turn and uncorked on the next tick, so nothing waits longer than the current turn.
 * Reaches amqplib's socket through runtime/library-internals.
 */
export function coalesceWrites(model: ChannelModel): void {
  const stream = amqpSocket(model);
  if (!stream || typeof stream.cork !== 'function') return;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork();
  };
  stream.write = ((...args: unknown[]) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Writable['write'];
}
