/**
 * Settling a message that cannot be applied: park a copy in the retry queue (backoff) or the dead-letter queue,
 * waiting for the broker's confirm, then acknowledge the message alone. The batch runner (batch-runner.ts) asks
 * here for every message that failed screening or its handler, and for every message from an untrusted publisher.
 */
import type { ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from '../runtime/logger';
import { settleWithin } from '../runtime/settle';
import type { TraceSpan } from '../runtime/tracing';
import { typeLabel, type ConsumerMetrics } from './consumer-metrics';
import { declaredType } from './debezium';
import { errorMessage } from './errors';
import { decideFailure, type DeadLetterReason, type FailurePolicy } from './failure-policy';
import { attemptsSpent, deadLetterCopy, retryCopy } from './parking';
import { UNTRUSTED_PUBLISHER, type PublisherTrust } from './publisher-trust';
import { consumerQueueNames, sendConfirmed, topologyNames, UnencodableMessageError } from './topology';

/** What the consumer needs of a confirm channel. */
export type ConsumerChannel = Pick<ConfirmChannel, 'sendToQueue' | 'publish' | 'ack'>;

/** The database could not be reached while applying a batch: the batch stays unsettled and comes back later. */
export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super('database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

export type FailureSettlementOptions = {
  queue: string;
  exchange: string;
  metrics: ConsumerMetrics;
  policy: FailurePolicy;
  /** Longest wait for the broker's confirm of a retry or dead-letter copy; past it the batch is not settled. */
  confirmTimeoutMs: number;
  /** Copies are signed with `trust.self`, this consumer's own user. */
  trust: PublisherTrust;
};

type DeadLetter = {
  reason: DeadLetterReason | 'unencodable' | typeof UNTRUSTED_PUBLISHER;
  error: string;
  attempt: number;
};

export type FailureSettlement = {
  /**
   * Store a message that failed in the retry queue or, when it never can succeed, the dead-letter queue, then
   * acknowledge it. Throws DatabaseUnavailableError, parking nothing, when the failure is the database's.
   */
  settleFailure: (
    channel: ConsumerChannel,
    msg: ConsumeMessage,
    err: unknown,
    mlog: Logger,
    span?: TraceSpan,
  ) => Promise<void>;
  /** Dead-letter a message whose publisher is not trusted (`detail` says why), then acknowledge it. */
  parkUntrusted: (channel: ConsumerChannel, msg: ConsumeMessage, detail: string, mlog: Logger) => Promise<void>;
  /** The message was parked and acknowledged alone: the batch's multiple ack must not cover it again. */
  isParked: (msg: ConsumeMessage) => boolean;
};

export function createFailureSettlement(opts: FailureSettlementOptions): FailureSettlement {
  const { queue, metrics } = opts;
  const names = consumerQueueNames(queue);
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

  async function parkUntrusted(channel: ConsumerChannel, msg: ConsumeMessage, detail: string, mlog: Logger) {
    mlog.error({ reason: UNTRUSTED_PUBLISHER, detail }, 'dead-lettering untrusted message');
    await deadLetter(channel, msg, { reason: UNTRUSTED_PUBLISHER, error: detail, attempt: 0 }, mlog);
    parked.add(msg);
    channel.ack(msg);
    metrics.messages.inc({ queue, type: typeLabel(declaredType(msg.properties)), outcome: 'dead_lettered' });
  }

  return { settleFailure, parkUntrusted, isParked: (msg) => parked.has(msg) };
}
