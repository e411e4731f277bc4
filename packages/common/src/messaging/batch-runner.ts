/**
 * One batch of AMQP deliveries from screening to acknowledgement: decode and validate each message, apply the valid
 * ones through the service's batch handler (one transaction; one per message when the batch fails), park what
 * failed in the retry or dead-letter queue as the failure policy decides, then acknowledge the batch. Works on a
 * narrow channel port, so it is tested with a fake channel.
 */
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { isEventType, schemaFor } from '../contracts/catalog';
import type { Logger } from '../runtime/logger';
import { startSpan, tracingOn, type TraceSpan } from '../runtime/tracing';
import type { BatchHandler, Incoming } from './batch-handler';
import { typeLabel, type ConsumerMetrics } from './consumer-metrics';
import { declaredType, messageIdentity } from './debezium';
import { decodeMessage } from './envelope-codec';
import { errorMessage, InvalidMessageError } from './errors';
import { decideFailure, type DeadLetterReason, type FailurePolicy } from './failure-policy';
import { attemptsSpent, deadLetterCopy, retryCopy } from './parking';
import { consumerQueueNames, sendConfirmed, topologyNames, UnencodableMessageError } from './topology';
import { settleWithin } from '../runtime/settle';
import { untrustedReason, UNTRUSTED_PUBLISHER, type PublisherTrust } from './publisher-trust';

/** What the runner needs of a confirm channel. */
export type ConsumerChannel = Pick<ConfirmChannel, 'sendToQueue' | 'publish' | 'ack'>;

/** The database could not be reached while applying a batch: the batch stays unsettled and comes back later. */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super('database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

export type BatchRunnerOptions = {
  queue: string;
  exchange: string;
  handler: BatchHandler;
  log: Logger;
  metrics: ConsumerMetrics;
  policy: FailurePolicy;
  /** Longest wait for the broker's confirm of a retry or dead-letter copy; past it the batch is not settled. */
  confirmTimeoutMs: number;
  /**
   * The database is unavailable while applying a batch of `channel` (`tries` holds so far): resolve when the batch
   * should be tried again, reject to give it up. Holding keeps the messages unacknowledged on their channel, so they
   * spend neither an attempt nor one of the broker's deliveries (a closed channel would return them, and the quorum
   * queue counts every return against its delivery limit).
   */
  hold: (channel: ConsumerChannel, err: unknown, tries: number) => Promise<void>;
  /** A held batch went through: the database answers again. */
  released: () => void;
  /** Whose events are applied; copies this consumer publishes are signed with its own user (publisher-trust.ts). */
  trust: PublisherTrust;
};

/** A valid message of a batch; `settled` once it is applied or parked, so a batch tried again skips it. */
type DeadLetter = {
  reason: DeadLetterReason | 'unencodable' | typeof UNTRUSTED_PUBLISHER;
  error: string;
  attempt: number;
};

type Valid = { msg: ConsumeMessage; incoming: Incoming; span: TraceSpan; settled?: boolean };

export type BatchRunner = {
  /**
   * Apply and settle `batch` (deliveries of `channel`, in delivery order), then acknowledge it. Rejects, having
   * acknowledged nothing, when the batch could not be settled.
   */
  run: (channel: ConsumerChannel, batch: ConsumeMessage[]) => Promise<void>;
};

export function createBatchRunner(opts: BatchRunnerOptions): BatchRunner {
  const { log, queue, handler, metrics } = opts;
  const names = consumerQueueNames(queue);
  const handled = new Set<string>(handler.types);
  /** Messages parked in the retry or dead-letter queue and acknowledged alone. */
  const parked = new WeakSet<ConsumeMessage>();

  /** Send a copy and wait for the broker's confirm, bounded: a queue that cannot confirm must not stall the loop. */
  const send = (channel: ConsumerChannel, to: string, msg: ConsumeMessage, options: Options.Publish, what: string) =>
    settleWithin(
      // Signed with this consumer's own user: the broker refuses another user's name on this connection.
      sendConfirmed(channel, to, msg.content, { ...options, userId: opts.trust.self }),
      opts.confirmTimeoutMs,
      what,
    );

  async function deadLetter(channel: ConsumerChannel, msg: ConsumeMessage, d: DeadLetter, mlog: Logger) {
    let options = deadLetterCopy(msg, { ...d, by: queue, at: new Date() });
    try {
      await send(channel, names.dlq, msg, options, 'dead-letter copy');
    } catch (err) {
      if (!(err instanceof UnencodableMessageError)) throw err;
      // What the message brought cannot be encoded again: park it bare rather than return it to the queue for ever.
      mlog.warn({ err }, "dead-letter copy cannot be encoded; parking it without the message's headers");
      options = deadLetterCopy(msg, { ...d, by: queue, at: new Date() }, true);
      await send(channel, names.dlq, msg, options, 'dead-letter copy');
    }
    // A report for observers (the saga monitor says which stuck saga has a message here). Best effort and after the
    // dead-letter queue has the message: a lost report loses no message, and the queue's depth gauge still alerts.
    try {
      const report = { ...options, userId: opts.trust.self };
      channel.publish(topologyNames(opts.exchange).deadLetterReports, names.dlq, msg.content, report, () => undefined);
    } catch (err) {
      mlog.warn({ err }, 'could not report a dead-lettered message');
    }
  }

  /** Store a message that failed in the retry queue (backoff) or, when it never can succeed, the dead-letter queue. */
  async function settleFailure(
    channel: ConsumerChannel,
    msg: ConsumeMessage,
    err: unknown,
    mlog: Logger,
    span?: TraceSpan,
  ): Promise<void> {
    const type = typeLabel(declaredType(msg.properties));
    const decision = decideFailure(err, attemptsSpent(msg.properties.headers) + 1, opts.policy);
    if (decision.kind === 'hold') throw new DatabaseUnavailableError(err);
    const outcome = decision.kind === 'retry' ? await retry(channel, msg, err, decision, mlog) : 'dead_lettered';
    if (outcome === 'dead_lettered') {
      const reason = decision.kind === 'retry' ? 'unencodable' : decision.reason;
      mlog.error({ err, attempt: decision.attempt, reason }, 'dead-lettering message');
      // x-attempt on the dead-letter copy keeps its earlier meaning: the tries recorded before this one.
      await deadLetter(channel, msg, { reason, error: errorMessage(err), attempt: decision.attempt - 1 }, mlog);
    }
    // Acknowledged at once: whatever happens to the rest of its batch (an outage, a lost channel), a parked message
    // must not come back, or its retry chain would multiply.
    parked.add(msg);
    channel.ack(msg);
    metrics.messages.inc({ queue, type, outcome });
    span?.end(errorMessage(err), { 'saga.outcome': outcome });
  }

  /** Park a copy in the retry queue; a copy that cannot be encoded is dead-lettered instead. */
  async function retry(
    channel: ConsumerChannel,
    msg: ConsumeMessage,
    err: unknown,
    decision: { attempt: number; delayMs: number },
    mlog: Logger,
  ): Promise<'retried' | 'dead_lettered'> {
    mlog.warn({ err, attempt: decision.attempt, retryInMs: decision.delayMs }, 'handler failed, will retry');
    const options = retryCopy(msg, decision.attempt, decision.delayMs, errorMessage(err));
    try {
      await send(channel, names.retry, msg, options, 'retry copy');
      return 'retried';
    } catch (sendErr) {
      if (sendErr instanceof UnencodableMessageError) return 'dead_lettered';
      throw sendErr;
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
  async function screen(channel: ConsumerChannel, msg: ConsumeMessage): Promise<Valid | undefined> {
    const declared = declaredType(msg.properties);
    if (typeof declared === 'string' && declared.length > 0 && !handled.has(declared)) {
      messageLog(msg).warn('ignoring event type this consumer does not handle');
      metrics.messages.inc({ queue, type: 'unknown', outcome: 'ignored' });
      return undefined;
    }
    const untrusted = untrustedReason(msg, opts.trust);
    if (untrusted) {
      const mlog = messageLog(msg);
      mlog.error({ reason: UNTRUSTED_PUBLISHER, detail: untrusted }, 'dead-lettering untrusted message');
      await deadLetter(channel, msg, { reason: UNTRUSTED_PUBLISHER, error: untrusted, attempt: 0 }, mlog);
      parked.add(msg);
      channel.ack(msg);
      metrics.messages.inc({ queue, type: typeLabel(declaredType(msg.properties)), outcome: 'dead_lettered' });
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
      const incoming = { type: envelope.type, data, envelope, log: mlog, traceparent: span.traceparent } as Incoming;
      return { msg, incoming, span };
    } catch (err) {
      await settleFailure(channel, msg, err, messageLog(msg));
      return undefined;
    }
  }

  const applied = (v: Valid, outcome: string) => {
    v.settled = true;
    metrics.messages.inc({ queue, type: v.incoming.type, outcome });
    v.span.end(undefined, { 'saga.outcome': outcome });
  };

  async function applyValid(channel: ConsumerChannel, valid: Valid[]): Promise<void> {
    if (valid.length === 0) return;
    try {
      const outcomes = await handler.apply(valid.map((v) => v.incoming));
      valid.forEach((v, i) => applied(v, outcomes[i] ?? 'applied'));
    } catch (batchErr) {
      // The database is unreachable: no message is at fault, so none may spend an attempt (a restart of
      // PostgreSQL would otherwise drain the queue into the dead-letter queue). Leave the batch unsettled.
      if (decideFailure(batchErr, 1, opts.policy).kind === 'hold') throw new DatabaseUnavailableError(batchErr);
      if (valid.length > 1)
        log.warn({ err: batchErr, size: valid.length }, 'batch failed; applying its messages one by one');
      for (const v of valid) {
        if (v.settled) continue;
        try {
          if (valid.length === 1) throw batchErr;
          const [outcome] = await handler.apply([v.incoming]);
          applied(v, outcome ?? 'applied');
        } catch (err) {
          await settleFailure(channel, v.msg, err, v.incoming.log, v.span);
          v.settled = true;
        }
      }
    }
  }

  /** Apply the valid messages; while the database is unavailable, hold what is not settled and try again. */
  async function applyHolding(channel: ConsumerChannel, valid: Valid[]): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        await applyValid(
          channel,
          valid.filter((v) => !v.settled),
        );
        if (tries > 0) opts.released();
        return;
      } catch (err) {
        if (!(err instanceof DatabaseUnavailableError)) throw err;
        await opts.hold(channel, err.cause, tries);
      }
    }
  }

  return {
    async run(channel, batch) {
      const end = metrics.handling.startTimer({ queue });
      metrics.batchSize.observe({ queue }, batch.length);
      const valid: Valid[] = [];
      for (const msg of batch) {
        const screened = await screen(channel, msg);
        if (screened) valid.push(screened);
      }
      try {
        await applyHolding(channel, valid);
      } finally {
        // A span still open was not settled (the batch goes back to the queue); ending twice is a no-op.
        for (const v of valid) v.span.end('not settled: returned to the queue');
      }
      // Every message up to the last of this batch is settled (batches run one at a time, in delivery order).
      // (Parked ones were acknowledged alone: the multiple ack goes to the last message that was not.)
      const last = batch.findLast((m) => !parked.has(m));
      if (last) channel.ack(last, true);
      end();
    },
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
