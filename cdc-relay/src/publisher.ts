/**
 * The confirming publisher: one broker connection and confirm channel per relay session. `publish` settles each
 * message as stored ('confirmed') or not ('refused'); the broker's quirks are handled here, not in the pipe.
 */
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { assertEventTopology, coalesceWrites } from '@saga/common/messaging/topology';
import { closeConnection, type BrokerConnector } from '@saga/common/messaging/broker';
import { DEFAULT_LIMITS, type EncodeLimits } from '@saga/common/messaging/envelope-codec';
import { brokerUser } from '@saga/common/messaging/publisher-trust';
import type { PublisherPort, Settled } from './pipe';

export type ConfirmingPublisher = PublisherPort & {
  /** What the broker accepts on this connection (frame size negotiated at connect). */
  limits: EncodeLimits;
  /** `fn` runs whenever the client's write buffer has room again. */
  onWritable: (fn: () => void) => void;
  /** Rejects when the connection or channel is lost. */
  lost: Promise<never>;
  close: () => Promise<void>;
  /** The broker node of this session (password hidden), for logs. */
  broker: string;
};

/** The negotiated frame_max of an amqplib connection (a content header frame must fit in one frame). */
const frameMaxOf = (conn: ChannelModel): number =>
  (conn as unknown as { connection?: { frameMax?: number } }).connection?.frameMax ?? 131072;

export async function connectPublisher(o: {
  broker: BrokerConnector;
  name: string;
  exchange: string;
  maxBodyBytes: number;
  onReturned?: (messageId: string | undefined) => void;
}): Promise<ConfirmingPublisher> {
  const conn = await o.broker.connect({ clientProperties: { connection_name: o.name } });
  coalesceWrites(conn);
  let reject!: (err: Error) => void;
  const lost = new Promise<never>((_, r) => (reject = r));
  lost.catch(() => undefined);
  conn.on('error', () => undefined); // the close event that follows ends the session
  conn.on('close', () => reject(new Error('broker connection closed')));
  let ch: ConfirmChannel;
  try {
    ch = await conn.createConfirmChannel();
    ch.on('error', () => undefined);
    ch.on('close', () => reject(new Error('broker channel closed')));
    await assertEventTopology(ch, o.exchange);
  } catch (err) {
    await closeConnection(conn);
    throw err;
  }

  // RabbitMQ sends basic.return and then basic.ack for a mandatory message it could not route, and amqplib reports
  // that ack as success: a returned message is remembered here and its confirm turned into a refusal. The return
  // always arrives before its ack on the channel.
  const returned = new Map<string, number>();
  ch.on('return', (msg: { properties: { messageId?: string } }) => {
    const id = msg.properties.messageId ?? '';
    returned.set(id, (returned.get(id) ?? 0) + 1);
    o.onReturned?.(msg.properties.messageId);
  });
  let writable = true;
  const drainListeners: (() => void)[] = [];
  ch.on('drain', () => {
    writable = true;
    for (const f of drainListeners) f();
  });
  let closed = false;
  conn.on('close', () => {
    closed = true;
  });

  const frameMax = frameMaxOf(conn);
  const headersFor = reusedHeaders();
  const userId = brokerUser(conn.brokerAddress);
  return {
    limits: { maxBodyBytes: o.maxBodyBytes, maxHeaderBytes: Math.min(DEFAULT_LIMITS.maxHeaderBytes, frameMax - 1024) },
    publish(
      exchange: string,
      routingKey: string,
      content: Buffer,
      options: Options.Publish,
      settled: (s: Settled) => void,
    ) {
      if (closed) {
        queueMicrotask(() => settled('refused'));
        return;
      }
      const messageId = options.messageId ?? '';
      const opts = Object.assign({}, options);
      opts.userId = userId; // the broker checks it against this connection's user: consumers apply only what we sign
      if (options.headers) opts.headers = headersFor(options.headers as Record<string, unknown>);
      const ok = ch.publish(exchange, routingKey, content, opts, (err: unknown) => {
        if (err) return settled('refused');
        if (returned.size > 0) {
          const n = returned.get(messageId);
          if (n !== undefined) {
            if (n > 1) returned.set(messageId, n - 1);
            else returned.delete(messageId);
            return settled('refused');
          }
        }
        settled('confirmed');
      });
      if (!ok) writable = false;
    },
    writable: () => writable,
    onWritable: (fn) => drainListeners.push(fn),
    lost,
    broker: conn.brokerAddress,
    async close() {
      await closeConnection(conn);
    },
  };
}

/**
 * amqplib's publish wraps `options.headers` in `Object.create(headers)` and encodes that with for...in. V8 prepares an
 * object the first time it becomes a prototype, and that cost about 6 µs per message with a new headers object each
 * time, the largest single cost of a publish (measured in-process: 12 µs for the properties with a new object, 6 µs
 * with one already used). amqplib encodes the table before publish returns, so the publisher hands it one object per
 * list of header names, its values overwritten for each message (the order of the names is the order encoded). The
 * caller's headers are never modified. A table that is not a plain object, or that has a `__proto__` key (assigning
 * it would set the prototype), goes as it is.
 */
export function reusedHeaders(): (headers: Record<string, unknown>) => Record<string, unknown> {
  let table: Record<string, unknown> | undefined;
  let names: string[] = [];
  return (headers) => {
    if (Object.getPrototypeOf(headers) !== Object.prototype) return headers;
    const keys = Object.keys(headers);
    let same = table !== undefined && keys.length === names.length;
    for (let i = 0; same && i < keys.length; i++) same = keys[i] === names[i];
    if (!same) {
      if (keys.includes('__proto__')) return headers;
      table = {};
      names = keys;
    }
    for (let i = 0; i < keys.length; i++) table![keys[i]!] = headers[keys[i]!];
    return table!;
  };
}
