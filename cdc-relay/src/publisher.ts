/**
 * The confirming publisher: one broker connection and confirm channel per relay session. `publish` settles each
 * message as stored ('confirmed') or not ('refused'); the broker's quirks are handled here, not in the pipe.
 */
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { assertEventTopology, coalesceWrites } from '@saga/common/messaging/topology';
import { closeConnection, type BrokerConnector } from '@saga/common/messaging/broker';
import { DEFAULT_LIMITS, type EncodeLimits } from '@saga/common/messaging/envelope-codec';
import type { PublisherPort, Refusal, Settled } from './pipe';
import {
  amqpFrameMax,
  replaceAmqpPublishEncoder,
  type AmqpPublishEncoder,
} from '@saga/common/runtime/library-internals';
import { encodePublish } from './publish-frames';
import { brokerUser } from '@saga/common/messaging/publisher-trust';

export type ConfirmingPublisher = PublisherPort & {
  /** What the broker accepts on this connection (frame size negotiated at connect). */
  limits: EncodeLimits;
  /** `fn` runs whenever the client's write buffer has room again (one listener: a later call replaces it). */
  onWritable: (fn: () => void) => void;
  /** Rejects when the connection or channel is lost. */
  lost: Promise<never>;
  close: () => Promise<void>;
  /** The broker node of this session (password hidden), for logs. */
  broker: string;
};

/** The negotiated frame_max of an amqplib connection (a content header frame must fit in one frame). */
const frameMaxOf = (conn: ChannelModel): number => amqpFrameMax(conn) ?? 131072;

type PublisherOptions = {
  broker: BrokerConnector;
  name: string;
  exchange: string;
  maxBodyBytes: number;
  onReturned?: (messageId: string | undefined) => void;
  /** A stop: gives up the connect at once (see BrokerConnector.connect). */
  signal?: AbortSignal;
};

/** A publisher's connection state, changed only by the functions below. */
type PublisherState = {
  o: PublisherOptions;
  conn: ChannelModel;
  lose: (err: Error) => void;
  closed: boolean;
  writable: boolean;
  onDrain: (() => void) | undefined;
  /**
   * RabbitMQ sends basic.return and then basic.ack for a mandatory message it could not route, and amqplib reports
   * that ack as success: a returned message is remembered here and its confirm turned into a refusal. The return
   * always arrives before its ack on the channel.
   */
  returned: Map<string, number>;
  current: ChannelState | undefined;
  /** While a channel the broker closed is replaced, publishes wait here (in order). */
  waiting: (() => void)[] | undefined;
  headersFor: (headers: Record<string, unknown>) => Record<string, unknown>;
  /** This connection's user: the broker checks `user-id` against it, and consumers apply only what it signs. */
  userId: string | undefined;
};

export async function connectPublisher(o: PublisherOptions): Promise<ConfirmingPublisher> {
  const conn = await o.broker.connect({ clientProperties: { connection_name: o.name } }, o.signal);
  coalesceWrites(conn);
  // The same bytes as amqplib's encoder with one slab slice per message instead of four allocations (publish-frames).
  replaceAmqpPublishEncoder(conn, encodePublish as AmqpPublishEncoder);
  let lose!: (err: Error) => void;
  const lost = new Promise<never>((_, r) => (lose = r));
  lost.catch(() => undefined);
  const s: PublisherState = {
    o,
    conn,
    lose,
    closed: false,
    writable: true,
    onDrain: undefined,
    returned: new Map(),
    current: undefined,
    waiting: undefined,
    headersFor: reusedHeaders(),
    userId: brokerUser(conn.brokerAddress),
  };
  conn.on('error', () => undefined); // the close event that follows ends the session
  conn.on('close', () => {
    s.closed = true;
    lose(new Error('broker connection closed'));
  });
  try {
    s.current = await openChannel(s);
    await assertEventTopology(s.current.ch, o.exchange);
  } catch (err) {
    await closeConnection(conn);
    throw err;
  }
  const frameMax = frameMaxOf(conn);
  return {
    limits: { maxBodyBytes: o.maxBodyBytes, maxHeaderBytes: Math.min(DEFAULT_LIMITS.maxHeaderBytes, frameMax - 1024) },
    publish: (exchange, routingKey, content, options, settled) =>
      publish(s, exchange, routingKey, content, options, settled),
    writable: () => s.writable,
    onWritable: (fn) => (s.onDrain = fn),
    lost,
    broker: conn.brokerAddress,
    async close() {
      await closeConnection(conn);
    },
  };
}

async function openChannel(s: PublisherState): Promise<ChannelState> {
  const ch = await s.conn.createConfirmChannel();
  const state = channelState(ch);
  ch.on('return', (msg: { properties: { messageId?: string } }) => {
    const id = msg.properties.messageId ?? '';
    s.returned.set(id, (s.returned.get(id) ?? 0) + 1);
    s.o.onReturned?.(msg.properties.messageId);
  });
  ch.on('drain', () => {
    s.writable = true;
    s.onDrain?.();
  });
  ch.on('close', () => {
    // A refusal of the broker's (406, 403) leaves the connection up: the channel is replaced, and the pipe decides
    // what the refusal means. Any other close ends the session.
    if (state.refusedBy && !s.closed) return void reopenChannel(s);
    s.lose(new Error('broker channel closed'));
  });
  return state;
}

async function reopenChannel(s: PublisherState): Promise<void> {
  s.waiting = [];
  try {
    s.current = await openChannel(s);
  } catch (err) {
    return s.lose(err instanceof Error ? err : new Error(String(err)));
  }
  // The old channel's full buffer said nothing about the new one; a stale 'not writable' would pause the stream
  // for good, since only the new channel's 'drain' would clear it.
  s.writable = true;
  const w = s.waiting;
  s.waiting = undefined;
  try {
    for (const f of w) f();
  } catch (err) {
    s.lose(err instanceof Error ? err : new Error(String(err)));
  }
}

function publish(
  s: PublisherState,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
  settled: (st: Settled, why?: Refusal) => void,
): void {
  if (s.closed) return void queueMicrotask(() => settled('abandoned'));
  if (s.waiting) return void s.waiting.push(() => publish(s, exchange, routingKey, content, options, settled));
  const state = s.current!;
  const messageId = options.messageId ?? '';
  const opts = Object.assign({}, options);
  if (s.userId !== undefined) opts.userId = s.userId;
  if (options.headers) opts.headers = s.headersFor(options.headers as Record<string, unknown>);
  const ok = state.ch.publish(exchange, routingKey, content, opts, (err: unknown) => {
    // amqplib settles the unconfirmed with an error both for a nack and when the channel closes (before the close
    // event reaches this publisher): decided a microtask later, when a close has been seen.
    if (err) return queueMicrotask(() => settled(...state.verdict(s.closed)));
    if (s.returned.size > 0) {
      const n = s.returned.get(messageId);
      if (n !== undefined) {
        if (n > 1) s.returned.set(messageId, n - 1);
        else s.returned.delete(messageId);
        return settled('refused', { text: 'returned as unroutable' });
      }
    }
    settled('confirmed');
  });
  if (!ok) s.writable = false;
}

/**
 * One confirm channel and why it closed. A channel the broker closed for a reason of its own (406, 403...) refused
 * the publishes it leaves unconfirmed; one closed with the connection, or by us, leaves them abandoned: nobody knows,
 * and nobody refused them. A publish that fails while its channel stays open was nacked.
 */
type ChannelState = ReturnType<typeof channelState>;

function channelState(ch: ConfirmChannel) {
  const state = {
    ch,
    closed: false,
    refusedBy: undefined as Refusal | undefined,
    verdict(connectionClosed: boolean): [Settled, Refusal?] {
      if (state.refusedBy) return ['refused', state.refusedBy];
      if (state.closed || connectionClosed) return ['abandoned'];
      return ['refused', { text: 'nacked' }];
    },
  };
  ch.on('error', (err: { code?: number; message?: string }) => {
    if (typeof err.code === 'number') state.refusedBy = { code: err.code, text: String(err.message) };
  });
  ch.on('close', () => (state.closed = true));
  return state;
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
