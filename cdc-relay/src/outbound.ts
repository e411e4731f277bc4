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
import { SessionError, type PublisherPort, type Refusal, type Settled } from './pipe-types';

/** Reply codes of a channel the broker closes because of one message, for good: that message is diverted. */
export const DIVERTED_REPLY_CODES: ReadonlySet<number> = new Set([403, 406]);

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
  fail: (err: Error) => void;
  failed: () => boolean;
};

export function createOutbound(o: OutboundOptions) {
  let window = Math.max(1, Math.min(o.startWindow, o.maxInFlight));
  let isolateThrough = o.isolateThrough;
  let sent = 0;
  let lastSentRow: string | undefined;
  let ready: Outgoing[] = [];
  let head = 0;
  // Aggregates with a message in the broker's hands or ready to go, and the messages waiting behind it.
  const busy = new Map<string, Outgoing[]>();
  const timers = new Set<NodeJS.Timeout>();

  const rowId = (x: Outgoing) => (typeof x.row.id === 'string' ? x.row.id : undefined);
  const limit = () => (isolateThrough === undefined ? window : 1);

  function pump(): void {
    while (head < ready.length && sent < limit() && !o.failed()) send(ready[head++]!);
    if (head === ready.length) {
      ready = [];
      head = 0;
    } else if (head > 1024) {
      ready = ready.slice(head);
      head = 0;
    }
  }

  function send(x: Outgoing): void {
    sent++;
    x.started ??= o.now();
    lastSentRow = rowId(x) ?? lastSentRow;
    try {
      o.publisher.publish(x.exchange, x.routingKey, x.m.content, x.m.options, (s, why) => settle(x, s, why));
    } catch (err) {
      // The client refused to encode it (nothing was sent): the row can never be published as it is.
      sent--;
      if (x.invalid) return o.fail(err instanceof Error ? err : new Error(String(err)));
      o.toInvalid(x, `the AMQP client cannot encode it: ${err instanceof Error ? err.message : String(err)}`);
      send(x);
    }
  }

  function settle(x: Outgoing, s: Settled, why?: Refusal): void {
    if (o.failed()) return;
    sent--;
    if (s === 'abandoned') return o.fail(new SessionError('broker connection lost before the confirm'));
    if (s === 'confirmed') {
      o.stored(x);
      if (rowId(x) === isolateThrough) isolateThrough = undefined;
      if (window < o.maxInFlight) window++;
      release(x);
      return pump();
    }
    refusedBy(x, why ?? { text: 'refused' });
  }

  function refusedBy(x: Outgoing, why: Refusal): void {
    o.refused(x, why);
    const permanent = why.code !== undefined && DIVERTED_REPLY_CODES.has(why.code);
    if (permanent && !x.invalid && isolateThrough !== undefined && sent === 0) {
      if (rowId(x) === isolateThrough) isolateThrough = undefined;
      o.toInvalid(x, `the broker refused it: ${why.text}`);
      send(x);
      return;
    }
    if (permanent && !x.invalid)
      return o.fail(
        new BrokerRefusalError(`broker refused a message (${why.text}); sending one at a time`, why, lastSentRow),
      );
    if (why.code === undefined && why.text === 'nacked') return retryLater(x);
    o.fail(
      new SessionError(
        `broker did not store ${x.invalid ? 'an invalid-queue copy' : 'a message'} (${x.m.options.messageId ?? 'no id'}): ${why.text}`,
      ),
    );
  }

  function retryLater(x: Outgoing): void {
    const wait = Math.min(o.retry.capMs, o.retry.baseMs * 2 ** Math.min(x.attempts++, 20));
    // Fewer in flight while the broker refuses: the window grows again with the confirms.
    window = Math.max(1, Math.floor(window / 2));
    const t = setTimeout(() => {
      timers.delete(t);
      if (o.failed()) return;
      send(x);
    }, wait);
    timers.add(t);
  }

  function release(x: Outgoing): void {
    if (x.key === undefined) return;
    const next = busy.get(x.key)?.shift();
    if (next) ready.push(next);
    else busy.delete(x.key);
  }

  return {
    /** Queue `x` to go as soon as its aggregate and the window allow. */
    submit(x: Outgoing): void {
      if (x.key !== undefined) {
        const behind = busy.get(x.key);
        if (behind) return void behind.push(x);
        busy.set(x.key, []);
      }
      ready.push(x);
      pump();
    },
    /** Published and not settled. */
    sent: () => sent,
    /** No message held back (for ordering, the window, or a retry). */
    idle: () => sent === 0 && head === ready.length && busy.size === 0 && timers.size === 0,
    window: () => limit(),
    close(): void {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
export type Outbound = ReturnType<typeof createOutbound>;
