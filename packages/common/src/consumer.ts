import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { Counter, Histogram, type Registry } from 'prom-client';
import { Envelope, isEventType, routingKeyOf, schemaFor, type EventData, type EventType, type DomainEvent } from './contracts';
import { assertConsumerTopology, consumerQueueNames, sendConfirmed } from './amqp';
import { classifyError, errorMessage, InvalidMessageError } from './errors';
import { backoffDelay, delay } from './lifecycle';
import type { Logger } from './logger';
import { appendToOutbox, tryMarkProcessed, type Tx } from './outbox';

export type Outcome = 'applied' | 'duplicate';
export type Handler<T extends EventType> = (data: EventData<T>, envelope: Envelope, log: Logger) => Promise<Outcome>;
export type Handlers = { [T in EventType]?: Handler<T> };

export type ConsumerOptions = {
  url: string;
  exchange: string;
  /** `<service>.<purpose>`: one durable quorum queue per consumer. */
  queue: string;
  handlers: Handlers;
  log: Logger;
  registry: Registry;
  /** Unacknowledged messages in flight at once. */
  prefetch?: number;
  /** Tries of a transiently failing message before it is dead-lettered. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to 30 s. */
  retryBaseMs?: number;
};

export type Consumer = { start: () => void; stop: () => Promise<void>; isReady: () => boolean };

const ATTEMPT_HEADER = 'x-attempt';

/** Rebuild the envelope from the AMQP message the relay published. Throws when it cannot be one. */
export function decodeMessage(msg: Pick<ConsumeMessage, 'content' | 'properties'>): Envelope {
  const p = msg.properties;
  const h = (p.headers ?? {}) as Record<string, unknown>;
  let payload: unknown;
  try {
    payload = JSON.parse(msg.content.toString('utf8'));
  } catch {
    throw new InvalidMessageError('body is not valid JSON');
  }
  const parsed = Envelope.safeParse({
    id: p.messageId,
    type: p.type,
    aggregateType: h['x-aggregate-type'],
    aggregateId: h['x-aggregate-id'],
    payload,
    headers: {
      correlationId: p.correlationId ?? h.correlationId,
      causationId: h.causationId ?? null,
      ...(typeof h.traceparent === 'string' ? { traceparent: h.traceparent } : {}),
    },
  });
  if (!parsed.success) {
    throw new InvalidMessageError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/**
 * Exactly-once in effect: the inbox row, the caller's business rows and the outbox rows of the events it returns
 * are written in one transaction. A message seen before changes nothing and answers 'duplicate'.
 */
export function applyOnce<T extends EventType>(
  db: { transaction: <R>(fn: (tx: Tx) => Promise<R>) => Promise<R> },
  consumer: string,
  apply: (tx: Tx, data: EventData<T>, envelope: Envelope, log: Logger) => Promise<DomainEvent[]>,
): Handler<T> {
  return (data, envelope, log) =>
    db.transaction(async (tx) => {
      if (!(await tryMarkProcessed(tx, consumer, envelope.id, envelope.type))) return 'duplicate';
      const events = await apply(tx, data, envelope, log);
      await appendToOutbox(tx, events, {
        correlationId: envelope.headers.correlationId,
        causationId: envelope.id,
        traceparent: envelope.headers.traceparent,
      });
      return 'applied';
    });
}

/**
 * Consume the events a service handles from its own queue, with reconnects (capped exponential backoff),
 * bounded prefetch, retry with backoff for transient failures and a dead-letter queue (reason in the headers)
 * for what can never succeed. Acknowledges only after the handler's transaction committed.
 */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const { log, queue } = opts;
  const prefetch = opts.prefetch ?? 16;
  const maxAttempts = opts.maxAttempts ?? 5;
  const retryBaseMs = opts.retryBaseMs ?? 500;
  const names = consumerQueueNames(queue);
  const routingKeys = (Object.keys(opts.handlers) as EventType[]).map(routingKeyOf);

  const messages = new Counter({
    name: 'consumer_messages_total',
    help: 'Messages handled, by event type and outcome (applied, duplicate, ignored, retried, dead_lettered)',
    labelNames: ['queue', 'type', 'outcome'] as const,
    registers: [opts.registry],
  });
  const handling = new Histogram({
    name: 'consumer_handle_seconds',
    help: 'Time from delivery to acknowledgement',
    labelNames: ['queue', 'type'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [opts.registry],
  });

  let stopping = false;
  let ready = false;
  let conn: ChannelModel | undefined;
  let ch: ConfirmChannel | undefined;
  let consumerTag: string | undefined;
  const inFlight = new Set<Promise<void>>();
  const abort = new AbortController();
  let loop: Promise<void> | undefined;

  async function deadLetter(channel: ConfirmChannel, msg: ConsumeMessage, reason: string, detail: string): Promise<void> {
    await sendConfirmed(channel, names.dlq, msg.content, {
      ...msg.properties,
      persistent: true,
      headers: {
        ...(msg.properties.headers ?? {}),
        'x-dead-letter-reason': reason,
        'x-dead-letter-error': detail.slice(0, 1000),
        'x-dead-lettered-at': new Date().toISOString(),
        'x-original-routing-key': msg.fields.routingKey,
        'x-original-exchange': msg.fields.exchange,
        'x-dead-lettered-by': queue,
      },
    });
  }

  async function handle(channel: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    const type = String(msg.properties.type ?? 'unknown');
    const end = handling.startTimer({ queue, type });
    const mlog = log.child({ messageId: msg.properties.messageId, eventType: type, correlationId: msg.properties.correlationId });
    try {
      const declared = msg.properties.type;
      if (typeof declared === 'string' && declared.length > 0 && (!isEventType(declared) || !opts.handlers[declared])) {
        // Forward compatibility: a type this consumer does not know is acknowledged and counted, not failed.
        mlog.warn('ignoring event type this consumer does not handle');
        messages.inc({ queue, type: 'unknown', outcome: 'ignored' });
        channel.ack(msg);
        return;
      }
      const envelope = decodeMessage(msg);
      if (!isEventType(envelope.type)) throw new InvalidMessageError(`unknown event type ${envelope.type}`);
      const data = schemaFor(envelope.type, envelope.payload.version).parse(envelope.payload.data);
      const handler = opts.handlers[envelope.type] as Handler<EventType>;
      const outcome = await handler(data as never, envelope, mlog);
      channel.ack(msg);
      messages.inc({ queue, type, outcome });
      mlog.debug({ outcome }, 'message handled');
    } catch (err) {
      const disposition = classifyError(err);
      const attempt = Number((msg.properties.headers ?? {})[ATTEMPT_HEADER] ?? 0) + 1;
      if (disposition === 'dead-letter' || attempt >= maxAttempts) {
        const reason = disposition === 'dead-letter' ? 'invalid' : 'retries-exhausted';
        mlog.error({ err, attempt, reason }, 'dead-lettering message');
        await deadLetter(channel, msg, reason, errorMessage(err));
        channel.ack(msg);
        messages.inc({ queue, type, outcome: 'dead_lettered' });
      } else {
        const wait = Math.min(30_000, retryBaseMs * 2 ** (attempt - 1));
        mlog.warn({ err, attempt, retryInMs: wait }, 'handler failed, will retry');
        await sendConfirmed(channel, names.retry, msg.content, {
          ...msg.properties,
          persistent: true,
          expiration: String(wait),
          headers: { ...(msg.properties.headers ?? {}), [ATTEMPT_HEADER]: attempt, 'x-last-error': errorMessage(err).slice(0, 500) },
        });
        channel.ack(msg);
        messages.inc({ queue, type, outcome: 'retried' });
      }
    } finally {
      end();
    }
  }

  function onMessage(channel: ConfirmChannel, msg: ConsumeMessage | null) {
    if (!msg) return; // consumer cancelled by the broker (queue deleted): the close handler reconnects
    const p = handle(channel, msg).catch((err) => {
      // The channel went away between handling and acknowledging: the broker redelivers, the inbox dedupes.
      log.warn({ err, messageId: msg.properties.messageId }, 'could not settle message; it will be redelivered');
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }

  async function session(): Promise<void> {
    conn = await amqp.connect(opts.url, { clientProperties: { connection_name: `consumer ${queue}` } });
    const closed = new Promise<void>((resolve) => {
      conn!.on('close', () => resolve());
      conn!.on('error', (err: unknown) => log.warn({ err }, 'broker connection error'));
    });
    const channel = await conn.createConfirmChannel();
    ch = channel;
    channel.on('error', (err: unknown) => log.warn({ err }, 'broker channel error'));
    channel.on('close', () => {
      ready = false;
      if (!stopping) void conn?.close().catch(() => undefined);
    });
    await assertConsumerTopology(channel, { exchange: opts.exchange, queue, routingKeys, deliveryLimit: maxAttempts * 4 });
    await channel.prefetch(prefetch);
    const reply = await channel.consume(queue, (msg) => onMessage(channel, msg), { noAck: false });
    consumerTag = reply.consumerTag;
    ready = true;
    log.info({ queue, routingKeys, prefetch }, 'consuming');
    await closed;
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!stopping) {
      const started = Date.now();
      try {
        await session();
      } catch (err) {
        if (!stopping) log.warn({ err }, 'broker session failed');
      }
      ready = false;
      if (stopping) break;
      if (Date.now() - started > 30_000) attempt = 0;
      const wait = backoffDelay(attempt++, 200, 10_000);
      log.info({ retryInMs: wait }, 'reconnecting to broker');
      await delay(wait, abort.signal);
    }
  }

  return {
    start() {
      loop ??= run();
    },
    async stop() {
      stopping = true;
      abort.abort();
      ready = false;
      try {
        if (ch && consumerTag) await ch.cancel(consumerTag);
      } catch {
        /* channel already gone */
      }
      await Promise.allSettled([...inFlight]);
      try {
        // A round trip first: the broker has then processed every ack sent before it, so closing returns nothing
        // that was already handled to the queue.
        await ch?.checkQueue(queue);
        await ch?.close();
      } catch {
        /* channel already gone */
      }
      try {
        await conn?.close();
      } catch {
        /* already closed */
      }
      await loop;
    },
    isReady: () => ready,
  };
}
