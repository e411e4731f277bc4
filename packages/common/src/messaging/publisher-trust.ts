/**
 * Who may publish the events a consumer applies. RabbitMQ checks the AMQP `user-id` property of every publish
 * against the user of the connection and refuses a mismatch (channel error 406), so a `user-id` is proof of who
 * sent a message (https://www.rabbitmq.com/docs/validated-user-id). The relay sets it on every event; a consumer
 * applies an event only when it names a trusted publisher. Anyone else able to reach the queue (a component whose
 * credentials write the default exchange, to park its own retries) cannot make a consumer move money.
 */
import { brokerAddresses } from './broker';

/** The dead-letter reason of a message from a publisher the consumer does not trust. */
export const UNTRUSTED_PUBLISHER = 'untrusted-publisher';

export type PublisherTrust = {
  /** User names whose events are applied: the relay's (and Debezium's, during a swap). */
  publishers: ReadonlySet<string>;
  /**
   * The consumer's own user: what it parks in its retry queue comes back with this `user-id` (RabbitMQ would refuse
   * the original publisher's name on the consumer's connection).
   */
  self: string;
  /** The events exchange: where an unsigned message may come from when `unsignedViaExchange` is on. */
  exchange: string;
  /**
   * Accept a message without `user-id` when the broker delivered it from the events exchange. Debezium Server's
   * RabbitMQ sink sets no `user-id`; with per-component users only the relay's and Debezium's users may write that
   * exchange, so its provenance rests on the broker's permissions instead.
   */
  unsignedViaExchange: boolean;
};

/** The user a broker URL logs in as: amqplib's default `guest` when the URL names none. */
export function brokerUser(url: string): string {
  const first = brokerAddresses(url)[0];
  if (!first) return 'guest';
  const name = decodeURIComponent(new URL(first).username);
  return name.length > 0 ? name : 'guest';
}

/** Comma-separated user names (EVENT_PUBLISHERS) as a list, blanks dropped. */
export function parsePublishers(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The trust of a consumer from its configuration. Without EVENT_PUBLISHERS (local runs and tests, where every
 * component shares one broker user) the consumer's own user is the publisher and unsigned events from the exchange
 * are accepted: with one shared user nothing could tell senders apart anyway. With EVENT_PUBLISHERS set, unsigned
 * events are refused unless `unsignedViaExchange` says otherwise.
 */
export function publisherTrust(o: {
  url: string;
  exchange: string;
  publishers?: string;
  unsignedViaExchange?: boolean;
}): PublisherTrust {
  const self = brokerUser(o.url);
  const listed = parsePublishers(o.publishers);
  return {
    publishers: new Set(listed.length > 0 ? listed : [self]),
    self,
    exchange: o.exchange,
    unsignedViaExchange: o.unsignedViaExchange ?? listed.length === 0,
  };
}

/** Why a delivered message must not be applied, or undefined when its publisher is trusted. Pure. */
export function untrustedReason(
  msg: { properties: { userId?: unknown }; fields: { exchange: string } },
  trust: PublisherTrust,
): string | undefined {
  const user = msg.properties.userId;
  if (typeof user === 'string' && user.length > 0) {
    if (trust.publishers.has(user) || user === trust.self) return undefined;
    return `user-id ${JSON.stringify(user.slice(0, 100))} is not a trusted publisher`;
  }
  if (trust.unsignedViaExchange && msg.fields.exchange === trust.exchange) return undefined;
  return `no user-id, and not published through ${trust.exchange} by a trusted publisher`;
}
