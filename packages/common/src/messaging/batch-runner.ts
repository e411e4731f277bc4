/**
 * One batch of AMQP deliveries from screening to acknowledgement: decode and validate each message, apply the valid
 * ones through the service's batch handler (one transaction; one per message when the batch fails), park what
 * failed in the retry or dead-letter queue as the failure policy decides, then acknowledge the batch. Works on a
 * narrow channel port, so it is tested with a fake channel.
 */
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { isEventType, schemaFor } from '../contracts/catalog';
import type { Logger } from '../runtime/logger';
import { startSpan, tracingOn, type TraceSpan } from '../runtime/tracing';
import type { BatchHandler, Incoming } from './batch-handler';
import { typeLabel, type ConsumerMetrics } from './consumer-metrics';
import { declaredType, messageIdentity } from './debezium';
import { DEAD_LETTER_HEADER as DLH, decodeMessage } from './envelope-codec';
import { errorMessage, InvalidMessageError } from './errors';
import { attemptsSpent, decideFailure, type FailurePolicy } from './failure-policy';
import { consumerQueueNames, sendConfirmed, topologyNames } from './topology';

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
  /**
   * The database is unavailable while applying a batch of `channel` (`tries` holds so far): resolve when the batch
   * should be tried again, reject to give it up. Holding keeps the messages unacknowledged on their channel, so they
   * spend neither an attempt nor one of the broker's deliveries (a closed channel would return them, and the quorum
   * queue counts every return against its delivery limit).
   */
  hold: (channel: ConsumerChannel, err: unknown, tries: number) => Promise<void>;
  /** A held batch went through: the database answers again. */
  released: () => void;
};

/** A valid message of a batch; `settled` once it is applied or parked, so a batch tried again skips it. */
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

  async function deadLetter(channel: ConsumerChannel, msg: ConsumeMessage, reason: string, detail: string) {
    const options = {
      ...msg.properties,
      persistent: true,
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
    channel: ConsumerChannel,
    msg: ConsumeMessage,
    err: unknown,
    mlog: Logger,
    span?: TraceSpan,
  ): Promise<void> {
    const type = typeLabel(declaredType(msg.properties));
    const decision = decideFailure(err, attemptsSpent(msg.properties.headers) + 1, opts.policy);
    if (decision.kind === 'hold') throw new DatabaseUnavailableError(err);
    if (decision.kind === 'dead-letter') {
      mlog.error({ err, attempt: decision.attempt, reason: decision.reason }, 'dead-lettering message');
      await deadLetter(channel, msg, decision.reason, errorMessage(err));
      metrics.messages.inc({ queue, type, outcome: 'dead_lettered' });
      span?.end(errorMessage(err), { 'saga.outcome': 'dead_lettered' });
      return;
    }
    mlog.warn({ err, attempt: decision.attempt, retryInMs: decision.delayMs }, 'handler failed, will retry');
    await sendConfirmed(channel, names.retry, msg.content, {
      ...msg.properties,
      persistent: true,
      expiration: String(decision.delayMs),
      headers: {
        ...(msg.properties.headers ?? {}),
        [DLH.attempt]: decision.attempt,
        [DLH.lastError]: errorMessage(err).slice(0, 500),
      },
    });
    metrics.messages.inc({ queue, type, outcome: 'retried' });
    span?.end(errorMessage(err), { 'saga.outcome': 'retried' });
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
      channel.ack(batch[batch.length - 1]!, true);
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
