/**
 * The consumer's AMQP session: connect (the broker's next node after a lost connection), declare the consumer's
 * queues, consume with a bounded prefetch into the batching pump, and start over from a clean state whenever the
 * session ends. Everything a session holds (connection, channel, consumer tag, readiness) is its own: a stop that
 * arrives during a reconnect acts on the session of the moment, never on one that is gone.
 *
 * A session ends in one place (`end`), whatever ended it: the connection closed or failed, the channel closed, the
 * broker cancelled the consumer (its queue deleted or recreated), a batch could not be settled. `end` does not wait
 * for amqplib to report the close: after a bounded close destroys the socket, amqplib reports nothing.
 */
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { routingKeyOf, type EventType } from '../contracts/catalog';
import { backoffDelay, delay, reconnectLoop } from '../runtime/lifecycle';
import type { Logger } from '../runtime/logger';
import { brokerConnector, closeConnection, type BrokerConnection } from './broker';
import type { BatchRunner, BatchRunnerOptions, ConsumerChannel } from './batch-runner';
import { createPump } from './consumer-pump';
import { settleWithin, TimeoutError } from '../runtime/settle';
import { declareConsumerTopology } from './consumer-topology';
import { coalesceWrites } from './topology';

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

type Session = {
  link: BrokerConnection;
  channel?: ConfirmChannel;
  consumerTag?: string;
  ready: boolean;
  ended: boolean;
  end: (why: string) => void;
  whenEnded: Promise<void>;
};

type Pump = ReturnType<typeof createPump<ConfirmChannel, ConsumeMessage>>;

export function createConsumerSession(opts: ConsumerSessionOptions) {
  const { log, queue } = opts;
  // One place in the broker's node list for this consumer: after a lost connection it moves to the next node.
  const broker = brokerConnector(opts.url);
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  let current: Session | undefined;
  /** The session of each channel: a batch that cannot be settled ends it. */
  const sessionOf = new WeakMap<ConsumerChannel, Session>();
  const holding = createHolding(opts, abort.signal, (channel) => sessionOf.get(channel)?.ended !== false);
  const runner = opts.runner(holding.ports);

  const pump = createPump<ConfirmChannel, ConsumeMessage>(
    {
      runBatch: (channel, batch) => runner.run(channel, batch),
      abandon(channel, err, size) {
        // Not settled (a retry or dead-letter send failed, or a held batch was given up). Ending the session closes
        // the connection, which returns every unacknowledged message to the queue; the next session starts clean and
        // the inbox drops what was already applied.
        log.warn({ err, size }, 'could not settle batch; returning it to the queue and reconnecting');
        sessionOf.get(channel)?.end('a batch could not be settled');
      },
    },
    { maxBatch: opts.maxBatch, batchIntervalMs: opts.batchIntervalMs },
  );

  async function session(): Promise<void> {
    const link = await broker.connect({ clientProperties: { connection_name: `consumer ${queue}` } }, abort.signal);
    const s = openSession(link, { log, queue, pump, signal: abort.signal });
    current = s;
    coalesceWrites(link);
    let onAbort!: () => void;
    const stopped = new Promise<void>((r) => (onAbort = r));
    abort.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // A stop that came while this session connected: close it without consuming.
      if (!abort.signal.aborted) {
        await consume(s, opts, { pump, signal: abort.signal, sessionOf });
        await Promise.race([s.whenEnded, stopped]);
      }
      if (abort.signal.aborted && !s.ended) await finishSession(s, pump, queue);
    } finally {
      abort.signal.removeEventListener('abort', onAbort);
      s.end('session over');
      if (current === s) current = undefined;
    }
  }

  return {
    start() {
      loop ??= reconnectLoop(session, { what: 'broker', log, signal: abort.signal });
    },
    async stop() {
      abort.abort();
      await loop;
      // A batch of a session that ended before the stop may still be running: it settles or gives up.
      await pump.drain();
    },
    isReady: () => current?.ready === true && !holding.isHolding(),
  };
}

/**
 * The runner's `hold` and `released` ports: while the database is unavailable a batch is held unacknowledged, tried
 * again after a capped backoff, and given up when the consumer stops or the batch's channel is gone (`gone`).
 */
function createHolding(
  opts: Pick<ConsumerSessionOptions, 'log' | 'queue' | 'holdCapMs'>,
  signal: AbortSignal,
  gone: (channel: ConsumerChannel) => boolean,
) {
  const { log, queue } = opts;
  /** A batch is held: the database is unavailable. */
  let holding = false;
  const ports: Pick<BatchRunnerOptions, 'hold' | 'released'> = {
    async hold(channel, err, tries) {
      if (!holding) log.warn({ err, queue }, 'database unavailable: holding the batch unacknowledged until it answers');
      holding = true;
      await delay(backoffDelay(tries, 200, opts.holdCapMs ?? 5_000), signal);
      if (signal.aborted || gone(channel))
        throw new Error('gave up a held batch: the consumer is stopping or its channel closed');
    },
    released() {
      holding = false;
      log.info({ queue }, 'database answers again: held batch applied');
    },
  };
  return { ports, isHolding: () => holding };
}

/** A session on a fresh connection; it ends, once, when the connection closes or whatever else ends it first. */
function openSession(
  link: BrokerConnection,
  deps: { log: Logger; queue: string; pump: Pump; signal: AbortSignal },
): Session {
  const { log, queue, pump, signal } = deps;
  let resolve!: () => void;
  const s: Session = {
    link,
    ready: false,
    ended: false,
    whenEnded: new Promise<void>((r) => (resolve = r)),
    end(why) {
      if (s.ended) return;
      s.ended = true;
      s.ready = false;
      if (s.channel) pump.drop(s.channel);
      if (!signal.aborted) log.warn({ queue, why }, 'broker session ended; reconnecting');
      resolve();
      // Bounded: on a half-open link amqplib's close never settles.
      void closeConnection(link);
    },
  };
  link.on('close', () => s.end('connection closed'));
  link.on('error', (err: unknown) => log.warn({ err }, 'broker connection error'));
  return s;
}

/** Open the session's channel, declare the consumer's queues and consume into the pump. */
async function consume(
  s: Session,
  opts: ConsumerSessionOptions,
  deps: { pump: Pump; signal: AbortSignal; sessionOf: WeakMap<ConsumerChannel, Session> },
): Promise<void> {
  const { log, queue, prefetch, maxBatch } = opts;
  const { pump, signal } = deps;
  const routingKeys = opts.types.map(routingKeyOf);
  const channel = await s.link.createConfirmChannel();
  s.channel = channel;
  deps.sessionOf.set(channel, s);
  channel.on('error', (err: unknown) => log.warn({ err }, 'broker channel error'));
  channel.on('close', () => s.end('channel closed'));
  await declareConsumerTopology(s.link, {
    exchange: opts.exchange,
    queue,
    routingKeys,
    deliveryLimit: opts.deliveryLimit,
    log,
  });
  await channel.prefetch(prefetch);
  if (signal.aborted || s.ended) return;
  const reply = await channel.consume(
    queue,
    // null: the broker cancelled the consumer (the queue was deleted or recreated): start over, redeclaring it.
    (msg) => (msg ? pump.push(channel, msg) : s.end('consumer cancelled by the broker')),
    { noAck: false },
  );
  s.consumerTag = reply.consumerTag;
  s.ready = !s.ended;
  log.info({ queue, routingKeys, prefetch, maxBatch, broker: s.link.brokerAddress }, 'consuming');
}

/** How long a clean stop waits for each broker answer before it takes the link for silent and gives it up. */
const FINISH_RPC_MS = 2_000;

/**
 * A clean stop of a live session: no new deliveries, apply and acknowledge what was delivered, then close. On a link
 * gone silent (no FIN, no RST) each step would wait for the heartbeat to notice, far past a shutdown's bound: the
 * first that goes unanswered gives the link up, and what was not acknowledged returns to the queue.
 */
async function finishSession(s: Session, pump: Pump, queue: string): Promise<void> {
  s.ready = false;
  let silent = false;
  const ask = async (what: string, call: () => Promise<unknown> | undefined) => {
    if (silent) return;
    try {
      await settleWithin(Promise.resolve(call()), FINISH_RPC_MS, what);
    } catch (err) {
      if (err instanceof TimeoutError) silent = true; // otherwise the channel is already gone
    }
  };
  if (s.channel && s.consumerTag) await ask('cancel', () => s.channel?.cancel(s.consumerTag!));
  // Finish what was delivered before the cancel: every buffered message is applied and acknowledged.
  await pump.drain();
  // A round trip first: the broker has then processed every ack sent before it, so closing returns nothing that was
  // already handled to the queue.
  await ask('check queue', () => s.channel?.checkQueue(queue));
  await ask('close channel', () => s.channel?.close());
  await closeConnection(s.link, silent ? 0 : 5_000);
}
