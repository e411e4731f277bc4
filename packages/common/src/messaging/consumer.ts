import type { ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { Counter, Histogram, type Registry } from 'prom-client';
import {
  isEventType,
  routingKeyOf,
  schemaFor,
  type Envelope,
  type EventData,
  type EventType,
  type DomainEvent,
} from '../contracts/catalog';
import { declaredType, messageIdentity } from './debezium';
import { DEAD_LETTER_HEADER as DLH, decodeMessage } from './envelope-codec';
import { assertConsumerTopology, coalesceWrites, consumerQueueNames, sendConfirmed, topologyNames } from './topology';
import { brokerConnector, closeConnection } from './broker';
import { publisherTrust, untrustedReason, UNTRUSTED_PUBLISHER, type PublisherTrust } from './publisher-trust';
import { classifyError, errorMessage, InvalidMessageError } from './errors';
import { isConnectionError } from '../db/pg';
import type pg from 'pg';
import { reconnectLoop, retryDelay } from '../runtime/lifecycle';
import type { Logger } from '../runtime/logger';
import { inboxClaim, pruneInbox } from '../db/inbox';
import { outboxInsert, type OutboxEntry } from '../db/outbox';
import { withTransaction, type SqlClient, type SqlPart } from '../db/sql';
import { startSpan, tracingOn, type TraceSpan } from '../runtime/tracing';

export type Outcome = 'applied' | 'duplicate';

/**
 * A message that passed decoding and its contract, ready for a handler. `traceparent` is the context of the span
 * that handles it (a child of the message's own): the events it causes carry it, so each step of a saga has its
 * own parent span in the order's one trace. `log` carries its trace_id and span_id.
 */
export type Incoming = {
  [T in EventType]: { type: T; data: EventData<T>; envelope: Envelope; log: Logger; traceparent: string };
}[EventType];

/**
 * What a service does with its messages. `apply` receives messages in delivery order and applies them in one
 * transaction, exactly once in effect, answering an outcome per message; when it throws, nothing of the batch
 * was applied.
 */
export type BatchHandler = {
  /** The event types this consumer handles: its queue's bindings. */
  types: readonly EventType[];
  apply: (messages: Incoming[]) => Promise<Outcome[]>;
};

export type ConsumerOptions = {
  url: string;
  exchange: string;
  /** `<service>.<purpose>`: one durable quorum queue per consumer. */
  queue: string;
  handler: BatchHandler;
  log: Logger;
  registry: Registry;
  /** Unacknowledged messages in flight at once. */
  prefetch?: number;
  /** Most messages applied in one transaction (at most `prefetch`). */
  maxBatch?: number;
  /**
   * Shortest time between the starts of two batches that are not full. A message that arrives after a quiet spell
   * is applied at once; messages that keep coming are gathered into one batch per interval instead of a
   * transaction each; a full batch (`maxBatch`) starts without waiting. 0 starts every batch at once.
   */
  batchIntervalMs?: number;
  /** Tries of a transiently failing message before it is dead-lettered. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to 30 s. */
  retryBaseMs?: number;
  /** Whose events are applied (publisher-trust.ts); by default the user of `url`. */
  trust?: PublisherTrust;
};

export type Consumer = { start: () => void; stop: () => Promise<void>; isReady: () => boolean };

/** The database could not be reached while applying a batch: the batch stays unsettled and comes back later. */
class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super('database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/** A step of one service over a batch: load the state the messages touch, decide and evolve, save. */
export type BatchStep<S> = {
  /**
   * One statement that runs `inbox` (claims the messages; RETURNING message_id names the new ones) and loads, locked,
   * the state every message of the batch touches. Answers the claimed ids and the state.
   */
  load: (
    client: SqlClient,
    inbox: SqlPart,
    messages: readonly Incoming[],
  ) => Promise<{ claimed: readonly string[]; state: S }>;
  /** Pure: the events `message` leads to and the state after them (decide, then evolve). */
  apply: (state: S, message: Incoming) => { state: S; events: DomainEvent[] };
  /** One statement that saves what changed from `before` to `after` and runs `outbox`. */
  save: (client: SqlClient, before: S, after: S, outbox: SqlPart) => Promise<void>;
};

/**
 * Exactly-once in effect for a batch, in one transaction of four round trips whatever its size: BEGIN; claim the
 * messages in the inbox and load the state they touch; fold decide/evolve over the new messages in delivery order;
 * save the state with the outbox rows of every event; COMMIT. A message claimed before (or twice in the batch)
 * changes nothing and answers 'duplicate'. While messages flow, inbox rows older than the retention are pruned.
 */
export function batchHandler<S>(
  pool: pg.Pool,
  consumer: string,
  types: readonly EventType[],
  step: BatchStep<S>,
  retention: InboxRetention = {},
): BatchHandler {
  const retentionHours = retention.retentionHours ?? 168;
  const pruneEveryMs = retention.pruneEveryMs ?? 60_000;
  let lastPrune = 0;
  /** Old inbox rows go while messages flow, at most once per `pruneEveryMs`: an idle service queries nothing. */
  async function pruneNowAndThen(log: Logger) {
    if (Date.now() - lastPrune < pruneEveryMs) return;
    lastPrune = Date.now();
    try {
      const pruned = await pruneInbox(pool, consumer, retentionHours);
      if (pruned > 0) log.info({ pruned, retentionHours }, 'pruned old inbox rows');
    } catch (err) {
      log.warn({ err }, 'could not prune old inbox rows; will try again');
    }
  }
  return {
    types,
    apply: async (messages) => {
      const outcomes = await applyInOneTransaction(messages);
      if (messages[0]) await pruneNowAndThen(messages[0].log);
      return outcomes;
    },
  };

  function applyInOneTransaction(messages: Incoming[]): Promise<Outcome[]> {
    return withTransaction(pool, async (client) => {
      const inbox = inboxClaim(
        consumer,
        messages.map((m) => ({ id: m.envelope.id, type: m.type })),
      );
      const { claimed, state: before } = await step.load(client, inbox, messages);
      const fresh = new Set(claimed);
      const outcomes: Outcome[] = [];
      const entries: OutboxEntry[] = [];
      let state = before;
      for (const m of messages) {
        if (!fresh.delete(m.envelope.id)) {
          outcomes.push('duplicate');
          continue;
        }
        const next = step.apply(state, m);
        state = next.state;
        entries.push({
          events: next.events,
          meta: {
            correlationId: m.envelope.headers.correlationId,
            causationId: m.envelope.id,
            traceparent: m.traceparent,
          },
        });
        outcomes.push('applied');
      }
      if (entries.length > 0) await step.save(client, before, state, outboxInsert(entries));
      return outcomes;
    });
  }
}

/** How long the inbox remembers a message (hours), and how often old rows are pruned while messages flow. */
export type InboxRetention = { retentionHours?: number; pruneEveryMs?: number };

/**
 * Consume the events a service handles from its own queue, with reconnects (capped exponential backoff),
 * bounded prefetch, retry with backoff for transient failures and a dead-letter queue (reason in the headers)
 * for what can never succeed.
 *
 * Messages are applied in batches, one at a time and in delivery order: what arrived while the previous batch
 * committed (up to `maxBatch`) goes into one transaction, so a busy consumer pays one commit for many messages and
 * per-aggregate order is never weaker than the queue's. When a batch fails, its messages are applied one per
 * transaction, so one poison message cannot hold back its neighbours. Every message of a batch is settled
 * (committed, or stored in the retry or dead-letter queue) before one acknowledgement covers them all.
 */
export function createConsumer(opts: ConsumerOptions): Consumer {
  const { log, queue, handler } = opts;
  const prefetch = opts.prefetch ?? 64;
  const maxBatch = Math.min(opts.maxBatch ?? prefetch, prefetch);
  const batchIntervalMs = opts.batchIntervalMs ?? 0;
  const maxAttempts = opts.maxAttempts ?? 5;
  const retryBaseMs = opts.retryBaseMs ?? 500;
  const trust = opts.trust ?? publisherTrust({ url: opts.url, exchange: opts.exchange });
  // One place in the broker's node list for this consumer: after a lost connection it moves to the next node.
  const broker = brokerConnector(opts.url);
  const names = consumerQueueNames(queue);
  const handled = new Set<string>(handler.types);
  const routingKeys = handler.types.map(routingKeyOf);

  const messages = new Counter({
    name: 'consumer_messages_total',
    help: 'Messages handled, by event type and outcome (applied, duplicate, ignored, retried, dead_lettered); types outside the catalogue count as unknown',
    labelNames: ['queue', 'type', 'outcome'] as const,
    registers: [opts.registry],
  });
  const handling = new Histogram({
    name: 'consumer_batch_seconds',
    help: 'Time to apply and settle one batch of messages',
    labelNames: ['queue'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [opts.registry],
  });
  const batchSize = new Histogram({
    name: 'consumer_batch_size',
    help: 'Messages per batch (one transaction when it succeeds)',
    labelNames: ['queue'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [opts.registry],
  });
  // A label value must come from a known list: any sender can set a message's type.
  const typeLabel = (type: unknown) => (typeof type === 'string' && isEventType(type) ? type : 'unknown');

  let ready = false;
  let conn: ChannelModel | undefined;
  let ch: ConfirmChannel | undefined;
  let consumerTag: string | undefined;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  let buffer: { channel: ConfirmChannel; msg: ConsumeMessage }[] = [];
  let pumping: Promise<void> | undefined;
  /** The connection of each channel, to close it when a batch on the channel cannot be settled. */
  const connOf = new WeakMap<ConfirmChannel, ChannelModel>();
  /** Channels whose batch could not be settled and which are being closed. */
  const abandoned = new WeakSet<ConfirmChannel>();
  let lastBatchAt = -Infinity;
  /** Set while the pump gathers a batch: called when a full batch is buffered. */
  let onFull: (() => void) | undefined;

  async function deadLetter(
    channel: ConfirmChannel,
    msg: ConsumeMessage,
    reason: string,
    detail: string,
  ): Promise<void> {
    const options = {
      ...msg.properties,
      persistent: true,
      userId: trust.self, // the broker refuses another user's name on this connection
      headers: {
        ...(msg.properties.headers ?? {}),
        [DLH.reason]: reason,
        [DLH.error]: detail.slice(0, 1000),
        [DLH.at]: new Date().toISOString(),
        [DLH.originalRoutingKey]: msg.fields.routingKey,
        [DLH.originalExchange]: msg.fields.exchange,
        [DLH.by]: queue,
      },
    };
    await sendConfirmed(channel, names.dlq, msg.content, options);
    // A report for observers (the saga monitor says which stuck saga has a message here). Best effort and after the
    // dead-letter queue has the message: a lost report loses no message, and the queue's depth gauge still alerts.
    channel.publish(topologyNames(opts.exchange).deadLetterReports, names.dlq, msg.content, options, () => undefined);
  }

  /** Store a message that failed in the retry queue (backoff) or, when it never can succeed, the dead-letter queue. */
  async function settleFailure(
    channel: ConfirmChannel,
    msg: ConsumeMessage,
    err: unknown,
    mlog: Logger,
    span?: TraceSpan,
  ): Promise<void> {
    const type = typeLabel(declaredType(msg.properties));
    const disposition = classifyError(err);
    const attempt = Number((msg.properties.headers ?? {})[DLH.attempt] ?? 0) + 1;
    if (disposition === 'dead-letter' || attempt >= maxAttempts) {
      const reason = disposition === 'dead-letter' ? 'invalid' : 'retries-exhausted';
      mlog.error({ err, attempt, reason }, 'dead-lettering message');
      await deadLetter(channel, msg, reason, errorMessage(err));
      messages.inc({ queue, type, outcome: 'dead_lettered' });
      span?.end(errorMessage(err), { 'saga.outcome': 'dead_lettered' });
    } else {
      const wait = retryDelay(attempt, retryBaseMs);
      mlog.warn({ err, attempt, retryInMs: wait }, 'handler failed, will retry');
      await sendConfirmed(channel, names.retry, msg.content, {
        ...msg.properties,
        persistent: true,
        userId: trust.self,
        expiration: String(wait),
        headers: {
          ...(msg.properties.headers ?? {}),
          [DLH.attempt]: attempt,
          [DLH.lastError]: errorMessage(err).slice(0, 500),
        },
      });
      messages.inc({ queue, type, outcome: 'retried' });
      span?.end(errorMessage(err), { 'saga.outcome': 'retried' });
    }
  }

  // Our relay's messages say who they are in AMQP properties, Debezium's in headers.
  const identity = (msg: ConsumeMessage) => {
    const m = messageIdentity(msg.properties);
    return { messageId: m.messageId, eventType: typeLabel(m.type), correlationId: m.correlationId };
  };
  const messageLog = (msg: ConsumeMessage) => log.child(identity(msg));

  /**
   * Decode and validate; an event type this consumer does not handle is settled at once (forward compatibility).
   * A valid message gets its span here, a child of the context it carries.
   */
  async function screen(
    channel: ConfirmChannel,
    msg: ConsumeMessage,
  ): Promise<{ incoming: Incoming; span: TraceSpan } | undefined> {
    const declared = declaredType(msg.properties);
    if (typeof declared === 'string' && declared.length > 0 && !handled.has(declared)) {
      messageLog(msg).warn('ignoring event type this consumer does not handle');
      messages.inc({ queue, type: 'unknown', outcome: 'ignored' });
      return undefined;
    }
    const untrusted = untrustedReason(msg, trust);
    if (untrusted) {
      messageLog(msg).error({ reason: UNTRUSTED_PUBLISHER, detail: untrusted }, 'dead-lettering untrusted message');
      await deadLetter(channel, msg, UNTRUSTED_PUBLISHER, untrusted);
      messages.inc({ queue, type: typeLabel(declaredType(msg.properties)), outcome: 'dead_lettered' });
      return undefined;
    }
    try {
      const envelope = decodeMessage(msg);
      if (!isEventType(envelope.type) || !handled.has(envelope.type))
        throw new InvalidMessageError(`unknown event type ${envelope.type}`);
      const data = schemaFor(envelope.type, envelope.payload.version).parse(envelope.payload.data);
      const span = startSpan(`process ${envelope.type}`, {
        parent: envelope.headers.traceparent,
        kind: 'consumer',
        attributes: tracingOn() ? spanAttributes(msg, queue) : undefined,
      });
      // One child logger per message (hot path): its identity and its span's ids together.
      const mlog = log.child({ ...identity(msg), ...span.logFields });
      return {
        incoming: { type: envelope.type, data, envelope, log: mlog, traceparent: span.traceparent } as Incoming,
        span,
      };
    } catch (err) {
      await settleFailure(channel, msg, err, messageLog(msg));
      return undefined;
    }
  }

  async function applyBatch(channel: ConfirmChannel, batch: ConsumeMessage[]): Promise<void> {
    const end = handling.startTimer({ queue });
    batchSize.observe({ queue }, batch.length);
    const valid: { msg: ConsumeMessage; incoming: Incoming; span: TraceSpan }[] = [];
    for (const msg of batch) {
      const screened = await screen(channel, msg);
      if (screened) valid.push({ msg, ...screened });
    }
    try {
      await applyValid(channel, valid);
    } finally {
      // A span still open was not settled (the batch goes back to the queue); ending twice is a no-op.
      for (const v of valid) v.span.end('not settled: returned to the queue');
    }
    // Every message up to the last of this batch is settled (batches run one at a time, in delivery order).
    channel.ack(batch[batch.length - 1]!, true);
    end();
  }

  async function applyValid(
    channel: ConfirmChannel,
    valid: { msg: ConsumeMessage; incoming: Incoming; span: TraceSpan }[],
  ): Promise<void> {
    if (valid.length > 0) {
      try {
        const outcomes = await handler.apply(valid.map((v) => v.incoming));
        valid.forEach((v, i) => {
          const outcome = outcomes[i] ?? 'applied';
          messages.inc({ queue, type: v.incoming.type, outcome });
          v.span.end(undefined, { 'saga.outcome': outcome });
        });
      } catch (batchErr) {
        // The database is unreachable: no message is at fault, so none may spend an attempt (a restart of
        // PostgreSQL would otherwise drain the queue into the dead-letter queue). Leave the batch unsettled.
        if (isConnectionError(batchErr)) throw new DatabaseUnavailableError(batchErr);
        if (valid.length > 1)
          log.warn({ err: batchErr, size: valid.length }, 'batch failed; applying its messages one by one');
        for (const v of valid) {
          try {
            if (valid.length === 1) throw batchErr;
            const [outcome] = await handler.apply([v.incoming]);
            messages.inc({ queue, type: v.incoming.type, outcome: outcome ?? 'applied' });
            v.span.end(undefined, { 'saga.outcome': outcome ?? 'applied' });
          } catch (err) {
            if (isConnectionError(err)) throw new DatabaseUnavailableError(err);
            await settleFailure(channel, v.msg, err, v.incoming.log, v.span);
          }
        }
      }
    }
  }

  /** Wait until `ms` have passed or a full batch is buffered, whichever comes first. */
  function gather(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        if (onFull === done) onFull = undefined;
        resolve();
      }
      onFull = done;
    });
  }

  /** Apply what is buffered, batch after batch, until the buffer is empty. */
  function pump(): Promise<void> {
    if (pumping) return pumping;
    // Nothing to do (the channel of what was buffered closed meanwhile): no run, so none can outlive itself.
    if (buffer.length === 0) return Promise.resolve();
    const run = (async () => {
      while (buffer.length > 0) {
        if (buffer.length < maxBatch && !abort.signal.aborted) {
          const wait = lastBatchAt + batchIntervalMs - performance.now();
          if (wait > 0) await gather(wait);
          // The channel of what was buffered closed meanwhile: its messages come back from the broker.
          if (buffer.length === 0) break;
        }
        lastBatchAt = performance.now();
        const channel = buffer[0]!.channel;
        let n = 1;
        while (n < maxBatch && n < buffer.length && buffer[n]!.channel === channel) n++;
        const batch = buffer.slice(0, n).map((b) => b.msg);
        buffer = buffer.slice(n);
        try {
          await applyBatch(channel, batch);
        } catch (err) {
          // Not settled (the database is unreachable, or a retry or dead-letter send failed): nothing of this
          // batch may be acknowledged by a later one. Closing the channel returns every unacknowledged message to
          // the queue; the session reconnects after a backoff and the inbox drops what was already applied.
          log.warn({ err, size: batch.length }, 'could not settle batch; returning it to the queue and reconnecting');
          buffer = buffer.filter((b) => b.channel !== channel);
          // A delivery still in flight on this channel must not be applied: its multiple ack would cover this batch.
          abandoned.add(channel);
          // Closing the whole connection, bounded: on a half-open link amqplib's close never settles, and a pump
          // awaiting it would never run again (the consumer would look ready and apply nothing).
          void closeConnection(connOf.get(channel));
        }
      }
    })().finally(() => {
      if (pumping === run) pumping = undefined;
    });
    pumping = run;
    return run;
  }

  function onMessage(channel: ConfirmChannel, msg: ConsumeMessage | null) {
    if (!msg) return; // consumer cancelled by the broker (queue deleted): the close handler reconnects
    if (abandoned.has(channel)) return; // the broker returns it to the queue when the connection closes
    buffer.push({ channel, msg });
    if (buffer.length >= maxBatch) onFull?.();
    // Start a batch on the next turn of the event loop, so that what arrived in the same read joins it.
    if (!pumping) setImmediate(() => void pump());
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
      // Unsettled messages of a closed channel come back from the broker; drop them here.
      buffer = buffer.filter((b) => b.channel !== channel);
      if (!abort.signal.aborted) void closeConnection(link);
    });
    await assertConsumerTopology(channel, {
      exchange: opts.exchange,
      queue,
      routingKeys,
      deliveryLimit: maxAttempts * 4,
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
      // Everything delivered before the cancel is buffered: a batch being gathered starts now, with all of it.
      onFull?.();
      // Finish what was delivered before the cancel: every buffered message is applied and acknowledged.
      while (pumping || buffer.length > 0) await (pumping ?? pump());
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
    isReady: () => ready,
  };
}

/** OpenTelemetry messaging attributes of a consumed message (built only while tracing is on). */
function spanAttributes(msg: ConsumeMessage, queue: string) {
  return {
    'messaging.system': 'rabbitmq',
    'messaging.operation.type': 'process',
    'messaging.destination.name': msg.fields.exchange,
    'messaging.rabbitmq.destination.routing_key': msg.fields.routingKey,
    'messaging.consumer.group.name': queue,
    'messaging.message.id': String(msg.properties.messageId ?? ''),
    'messaging.message.conversation_id': String(msg.properties.correlationId ?? ''),
  };
}
