/**
 * The pipe's outbound side: which message goes to the broker when, and what a refusal means. Pure over the publisher
 * port, tested with a fake broker.
 *
 * - Per-aggregate order: a message is not published while an earlier message of its aggregate is unconfirmed. A
 *   consumer queue that refuses the first (a nack) while another queue stored it would otherwise get the second
 *   first: the first is sent again only after the refusal, and fan-out makes every queue see that order.
 * - A window of messages in flight: after a failure a session starts with a window of one that grows by one per
 *   confirm (doubling per round trip) up to the maximum, so a failure repeating costs a small tail of duplicates.
 * - A nack (a full queue, a queue without a leader) is transient: the message is sent again after a backoff, in the
 *   session, holding back only its own aggregate. A transaction larger than the gap between two refusals still
 *   completes, which a restart of the session would never let it.
 * - A refusal the broker closes the channel for (406 PRECONDITION_FAILED, 403 ACCESS_REFUSED) is about that message
 *   and will not change: while the message is alone in flight (`isolateThrough`, after a session failed on one), it
 *   is diverted to the invalid queue with the broker's reply code and text, and the stream goes on. With more in
 *   flight the culprit is unknown (a classic queue confirms after its fsync, so earlier messages may be unconfirmed
 *   too): the session fails naming the last message sent, and the next one sends everything up to it alone.
 */
import type { EncodedMessage } from '@saga/common/messaging/envelope-codec';
import type { TxEntry } from './lsn';
import type { TxRecord } from './tx-progress';
import { SessionError, type PublisherPort, type Refusal, type Settled } from './pipe-types';

/** Reply codes of a channel the broker closes because of one message, for good: that message is diverted. */
export const DIVERTED_REPLY_CODES: ReadonlySet<number> = new Set([403, 406]);

/**
 * Whether a refusal is about the one message, so that diverting that row is right. A 406 always is (a header or a
 * size the broker will never take). A 403 is only when it refuses the message's topic (a topic permission): a 403
 * for the exchange itself refuses every message alike, and diverting would send the whole stream to the invalid
 * queue; the session fails and retries until an operator restores the permission. AMQP gives both the same reply
 * code, so the reply text (RabbitMQ's "access to topic ... refused") tells them apart.
 */
export function refusesThisMessage(why: Refusal): boolean {
  if (why.code === undefined || !DIVERTED_REPLY_CODES.has(why.code)) return false;
  return why.code !== 403 || /access to topic /.test(why.text);
}

export class BrokerRefusalError extends SessionError {
  override name = 'BrokerRefusalError';
  constructor(
    message: string,
    readonly refusal: Refusal,
    /** Row id of the last message sent when the broker refused: the next session sends up to it one at a time. */
    readonly frontier: string | undefined,
  ) {
    super(message);
  }
}

export type Outgoing = {
  e: TxEntry;
  row: Record<string, unknown>;
  exchange: string;
  routingKey: string;
  m: EncodedMessage;
  /** A copy for the invalid queue, not an event. */
  invalid: boolean;
  /** The aggregate whose order it keeps; undefined for none. */
  key: string | undefined;
  attempts: number;
  started?: number;
  /** The next message of its aggregate, held until this one is stored. */
  next?: Outgoing;
  /** Its transaction's progress record and its position among the transaction's rows (tx-progress.ts). */
  tx?: TxRecord;
  seq: number;
};

export type OutboundOptions = {
  publisher: PublisherPort;
  maxInFlight: number;
  /** Window of the first messages: 1 after a failure, else maxInFlight. */
  startWindow: number;
  /** Send messages one at a time until the row with this id is settled (see BrokerRefusalError). */
  isolateThrough?: string;
  retry: { baseMs: number; capMs: number };
  now: () => number;
  /** Stored: confirmed by the broker, and not returned. */
  stored: (x: Outgoing) => void;
  /** Turn `x` into its invalid-queue copy for `reason` (in place: it keeps its transaction and aggregate). */
  toInvalid: (x: Outgoing, reason: string) => void;
  refused: (x: Outgoing, why: Refusal) => void;
  /** `x` goes again after a nack. */
  resent?: (x: Outgoing) => void;
  fail: (err: Error) => void;
  failed: () => boolean;
};

/** The outbound side's state: one per session, changed only by the functions below. */
type OutboundState = {
  o: OutboundOptions;
  window: number;
  isolateThrough: string | undefined;
  /** Published and not settled. */
  sent: number;
  lastSentRow: string | undefined;
  /** Free to go, waiting for room in the window (from `head` on). */
  ready: Outgoing[];
  head: number;
  /**
   * Aggregates with a message in the broker's hands, ready or awaiting a retry: the last message of each. The
   * messages behind the first form a chain (`next`), so holding and releasing one is O(1) however long it is.
   */
  tails: Map<string, Outgoing>;
  /** Messages waiting behind an earlier one of their aggregate. */
  held: number;
  timers: Set<NodeJS.Timeout>;
};

export function createOutbound(o: OutboundOptions) {
  const s: OutboundState = {
    o,
    window: Math.max(1, Math.min(o.startWindow, o.maxInFlight)),
    isolateThrough: o.isolateThrough,
    sent: 0,
    lastSentRow: undefined,
    ready: [],
    head: 0,
    tails: new Map(),
    held: 0,
    timers: new Set(),
  };
  return {
    /** Queue `x` to go as soon as its aggregate and the window allow. */
    submit(x: Outgoing): void {
      if (x.key !== undefined) {
        const tail = s.tails.get(x.key);
        s.tails.set(x.key, x);
        if (tail) {
          tail.next = x;
          s.held++;
          return;
        }
      }
      s.ready.push(x);
      pump(s);
    },
    /** Published and not settled. */
    sent: () => s.sent,
    /**
     * Free to go and waiting for room in the window, or for their retry after a nack: with `sent`, what the window is
     * asked to carry (a message waiting out its retry is in memory as much as one in flight).
     */
    waiting: () => s.ready.length - s.head + s.timers.size,
    /** Waiting behind an earlier message of their aggregate: they take no room in the window. */
    held: () => s.held,
    /** No message held back (for ordering, the window, or a retry). */
    idle: () => s.sent === 0 && s.head === s.ready.length && s.tails.size === 0 && s.timers.size === 0,
    window: () => limit(s),
    close(): void {
      for (const t of s.timers) clearTimeout(t);
      s.timers.clear();
    },
  };
}
export type Outbound = ReturnType<typeof createOutbound>;

const rowId = (x: Outgoing) => (typeof x.row.id === 'string' ? x.row.id : undefined);
const limit = (s: OutboundState) => (s.isolateThrough === undefined ? s.window : 1);

function pump(s: OutboundState): void {
  while (s.head < s.ready.length && s.sent < limit(s) && !s.o.failed()) send(s, s.ready[s.head++]!);
  // Drop what was sent; copying the rest only once it is at most as long as the part dropped keeps it O(1) a message.
  if (s.head === s.ready.length) {
    s.ready = [];
    s.head = 0;
  } else if (s.head > 1024 && s.head * 2 > s.ready.length) {
    s.ready = s.ready.slice(s.head);
    s.head = 0;
  }
}

function send(s: OutboundState, x: Outgoing): void {
  const { o } = s;
  s.sent++;
  x.started ??= o.now();
  s.lastSentRow = rowId(x) ?? s.lastSentRow;
  try {
    o.publisher.publish(x.exchange, x.routingKey, x.m.content, x.m.options, (st, why) => settle(s, x, st, why));
  } catch (err) {
    // The client refused to encode it (nothing was sent): the row can never be published as it is.
    s.sent--;
    if (x.invalid) return o.fail(err instanceof Error ? err : new Error(String(err)));
    o.toInvalid(x, `the AMQP client cannot encode it: ${err instanceof Error ? err.message : String(err)}`);
    send(s, x);
  }
}

function settle(s: OutboundState, x: Outgoing, st: Settled, why?: Refusal): void {
  const { o } = s;
  if (o.failed()) return;
  s.sent--;
  if (st === 'abandoned') return o.fail(new SessionError('broker connection lost before the confirm'));
  if (st === 'confirmed') {
    if (rowId(x) === s.isolateThrough) s.isolateThrough = undefined;
    if (s.window < o.maxInFlight) s.window++;
    // Released first, so that what `stored` sees (room to read more WAL) counts the next one as free to go.
    release(s, x);
    o.stored(x);
    return pump(s);
  }
  refusedBy(s, x, why ?? { text: 'refused' });
}

function refusedBy(s: OutboundState, x: Outgoing, why: Refusal): void {
  const { o } = s;
  o.refused(x, why);
  const permanent = refusesThisMessage(why);
  if (permanent && !x.invalid && s.isolateThrough !== undefined && s.sent === 0) {
    if (rowId(x) === s.isolateThrough) s.isolateThrough = undefined;
    o.toInvalid(x, `the broker refused it: ${why.text}`);
    return send(s, x);
  }
  if (permanent && !x.invalid)
    return o.fail(
      new BrokerRefusalError(`broker refused a message (${why.text}); sending one at a time`, why, s.lastSentRow),
    );
  if (why.code === undefined && why.text === 'nacked') {
    // A channel can keep refusing after a quorum queue's leader changed (its view of the queue is stale): after this
    // many refusals of one message the session ends, and the next one opens a new channel (progress is kept).
    if (x.attempts + 1 >= NACKS_BEFORE_NEW_CHANNEL)
      return o.fail(
        new SessionError(
          `broker refused message ${x.m.options.messageId ?? '(no id)'} ${NACKS_BEFORE_NEW_CHANNEL} times; opening a new channel`,
        ),
      );
    return retryLater(s, x);
  }
  o.fail(
    new SessionError(
      `broker did not store ${x.invalid ? 'an invalid-queue copy' : 'a message'} (${x.m.options.messageId ?? 'no id'}): ${why.text}`,
    ),
  );
}

/** Refusals (nacks) of one message within a session before the session is ended for a new channel. */
export const NACKS_BEFORE_NEW_CHANNEL = 8;

function retryLater(s: OutboundState, x: Outgoing): void {
  const wait = Math.min(s.o.retry.capMs, s.o.retry.baseMs * 2 ** Math.min(x.attempts++, 20));
  // Fewer in flight while the broker refuses: the window grows again with the confirms.
  s.window = Math.max(1, Math.floor(s.window / 2));
  const t = setTimeout(() => {
    s.timers.delete(t);
    if (s.o.failed()) return;
    s.o.resent?.(x);
    send(s, x);
  }, wait);
  s.timers.add(t);
}

function release(s: OutboundState, x: Outgoing): void {
  if (x.key === undefined) return;
  const next = x.next;
  if (next) {
    x.next = undefined;
    s.held--;
    s.ready.push(next);
  } else s.tails.delete(x.key);
}
