/**
 * Screening a delivery before it is applied: skip an event type this consumer does not handle (forward
 * compatibility), dead-letter what an untrusted publisher sent, decode and validate the rest. A message that fails
 * decoding or validation is settled here (failure-settlement.ts); a valid one gets its span and child logger.
 */
import type { ConsumeMessage } from 'amqplib';
import { isEventType, schemaFor } from '../contracts/catalog';
import type { Logger } from '../runtime/logger';
import { startSpan, tracingOn, type TraceSpan } from '../runtime/tracing';
import type { Incoming } from './batch-handler';
import { typeLabel, type ConsumerMetrics } from './consumer-metrics';
import { declaredType, messageIdentity } from './debezium';
import { decodeMessage } from './envelope-codec';
import { InvalidMessageError } from './errors';
import type { ConsumerChannel, FailureSettlement } from './failure-settlement';
import { untrustedReason, type PublisherTrust } from './publisher-trust';

/** A valid message of a batch; `settled` once it is applied or parked, so a batch tried again skips it. */
export type Valid = { msg: ConsumeMessage; incoming: Incoming; span: TraceSpan; settled?: boolean };

export type ScreeningOptions = {
  queue: string;
  /** The event types the service's batch handler applies. */
  types: readonly string[];
  log: Logger;
  metrics: ConsumerMetrics;
  trust: PublisherTrust;
  settlement: FailureSettlement;
};

/** Screen one delivery: the valid message, or undefined when it was ignored or settled here. */
export type Screen = (channel: ConsumerChannel, msg: ConsumeMessage) => Promise<Valid | undefined>;

export function createScreening(opts: ScreeningOptions): Screen {
  const { log, queue, metrics, settlement } = opts;
  const handled = new Set<string>(opts.types);

  // Our relay's messages say who they are in AMQP properties, Debezium's in headers.
  const identity = (msg: ConsumeMessage) => {
    const m = messageIdentity(msg.properties);
    return { messageId: m.messageId, eventType: typeLabel(m.type), correlationId: m.correlationId };
  };
  const messageLog = (msg: ConsumeMessage) => log.child(identity(msg));

  /** Decode and validate; a valid message gets its span here, a child of the context it carries. */
  function validate(msg: ConsumeMessage): Valid {
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
  }

  return async (channel, msg) => {
    const declared = declaredType(msg.properties);
    if (typeof declared === 'string' && declared.length > 0 && !handled.has(declared)) {
      messageLog(msg).warn('ignoring event type this consumer does not handle');
      metrics.messages.inc({ queue, type: 'unknown', outcome: 'ignored' });
      return undefined;
    }
    const untrusted = untrustedReason(msg, opts.trust);
    if (untrusted) {
      await settlement.parkUntrusted(channel, msg, untrusted, messageLog(msg));
      return undefined;
    }
    try {
      return validate(msg);
    } catch (err) {
      await settlement.settleFailure(channel, msg, err, messageLog(msg));
      return undefined;
    }
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
