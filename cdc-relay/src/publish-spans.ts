/**
 * The relay's part of a trace: with tracing on, a PRODUCER span per event published, from the publish to the
 * broker's confirm, child of (and linked to) the context the outbox row carries, so it joins the order's trace.
 */
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { startSpan } from '@saga/common/runtime/tracing';
import type { PublisherPort } from './pipe';

/**
 * `inner` with a span around each event's publish. The message goes out with the row's `traceparent` unchanged:
 * consumers continue the producer's span, not the relay's (the relay is transport, not a step of the saga). Used
 * only while tracing is on, so the relay's hot path is untouched otherwise.
 */
export function withPublishSpans(inner: PublisherPort, source: string): PublisherPort {
  return {
    writable: () => inner.writable(),
    publish(exchange, routingKey, content, options, settled) {
      // Copies for the invalid queue (default exchange) are no event of any trace.
      if (exchange === '') return inner.publish(exchange, routingKey, content, options, settled);
      const span = startSpan(`publish ${options.type ?? routingKey}`, {
        parent: options.headers?.[HEADER.traceparent],
        kind: 'producer',
        linkParent: true,
        attributes: {
          'messaging.system': 'rabbitmq',
          'messaging.operation.type': 'send',
          'messaging.destination.name': exchange,
          'messaging.rabbitmq.destination.routing_key': routingKey,
          'messaging.message.id': String(options.messageId ?? ''),
          'messaging.message.conversation_id': String(options.correlationId ?? ''),
          'saga.outbox.source': source,
        },
      });
      try {
        inner.publish(exchange, routingKey, content, options, (s, why) => {
          span.end(s === 'refused' ? 'the broker did not store the message' : undefined);
          settled(s, why);
        });
      } catch (err) {
        // Nothing was sent; the pipe sends the row to the invalid queue instead.
        span.end(`the AMQP client cannot encode it: ${err instanceof Error ? err.message : String(err)}`);
        throw err;
      }
    },
  };
}
