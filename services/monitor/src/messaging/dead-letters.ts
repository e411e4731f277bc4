import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { consumerQueueNames, topologyNames } from '@saga/common/messaging/topology';
import { brokerConnector, closeConnection } from '@saga/common/messaging/broker';
import { headerValue, messageIdentity } from '@saga/common/messaging/debezium';
import { DEAD_LETTER_HEADER as DLH, HEADER } from '@saga/common/messaging/envelope-codec';
import { backoffDelay, delay, reconnectLoop } from '@saga/common/runtime/lifecycle';
import type { Logger } from '@saga/common/runtime/logger';
import { isConnectionError } from '@saga/common/db/pg';
import { settleWithin } from '@saga/common/runtime/settle';
import type pg from 'pg';
import { Counter, type Registry } from 'prom-client';
import type { CatchUp } from '../catch-up';
import { recordDeadLetters, type DeadLetterRow } from '../db/saga-repository';

/** The monitor's queue of dead-letter reports. */
export const DEAD_LETTER_REPORTS_QUEUE = 'monitor.dead-letter-reports';
/** An observer must never hold the broker back: past this many reports the oldest go (the DLQs keep the messages). */
const REPORTS_MAX_LENGTH = 100_000;

/**
 * A dead-letter report (a copy of a message a consumer parked in its dead-letter queue) as the monitor keeps it.
 * Pure. The key includes the time it was parked: a redelivered report is the same row, a message replayed and
 * dead-lettered again is a second one. Our relay's messages carry the order id as correlationId; Debezium's carry
 * it in their headers, and both carry the aggregate id.
 */
export function toDeadLetterRow(msg: Pick<ConsumeMessage, 'properties' | 'fields'>, now: Date): DeadLetterRow {
  const h = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : null);
  const at = str(h[DLH.at]);
  const parsed = at ? new Date(at) : now;
  const when = Number.isNaN(parsed.getTime()) ? now : parsed;
  // What the consumers' logs name a message by, for both shapes.
  const id = messageIdentity(msg.properties);
  const messageId = str(id.messageId) ?? 'unknown';
  const consumer = str(h[DLH.by]) ?? msg.fields.routingKey.replace(/\.dlq$/, '');
  return {
    key: `${messageId}@${consumer}@${when.toISOString()}`,
    messageId,
    queue: consumerQueueNames(consumer).dlq,
    orderId: str(id.correlationId) ?? str(headerValue(h[HEADER.aggregateId])),
    type: str(id.type),
    reason: str(h[DLH.reason]),
    error: str(h[DLH.error]),
    at: when,
  };
}

/**
 * The monitor's own broker session: consume the reports consumers publish when they dead-letter a message into
 * `dead_letters`, so that a stuck saga says whether a message of it waits in a dead-letter queue, and read the depth
 * of the monitor's event queue every `depthEveryMs` (CatchUp). Reports are written in batches, one at a time
 * (one statement each, deduplicated by key) and acknowledged after; while the database is unreachable a batch is
 * retried in place with backoff, unacknowledged; a report the database refuses for any other reason is logged,
 * counted and acknowledged (it is an observation: the message itself stays in its dead-letter queue). The
 * dead-letter queues themselves are never read, so an operator's replay is unaffected.
 */
export function startMonitorBrokerSession(opts: {
  url: string;
  exchange: string;
  eventsQueue: string;
  pool: pg.Pool;
  log: Logger;
  registry: Registry;
  catchUp: CatchUp;
  depthEveryMs?: number;
}): { stop: () => Promise<void>; isReady: () => boolean } {
  const { pool, log, catchUp } = opts;
  const abort = new AbortController();
  const connector = brokerConnector(opts.url);
  const reports = new Counter({
    name: 'monitor_dead_letter_reports_total',
    help: 'Dead-letter reports received, by outcome (recorded, duplicate, refused: the database would not store it)',
    labelNames: ['outcome'] as const,
    registers: [opts.registry],
  });
  let ready = false;

  async function session(): Promise<void> {
    const conn = await connector.connect(
      { clientProperties: { connection_name: `monitor ${DEAD_LETTER_REPORTS_QUEUE}` } },
      abort.signal,
    );
    conn.on('error', (err: unknown) => log.warn({ err }, 'broker connection error (monitor session)'));
    // The session ends when the connection closes, when something ends it, or on a stop, also one that came while
    // the connection was being made. Not on amqplib's close alone: after a close that had to destroy the socket
    // (closeConnection's bound), amqplib reports nothing.
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    conn.on('close', end);
    abort.signal.addEventListener('abort', end, { once: true });
    let consuming: Promise<void> | undefined;
    try {
      if (abort.signal.aborted) return;
      consuming = consumeReports(conn, ended, end);
      consuming.catch(() => undefined); // when the session ended first; otherwise the race below rethrows it
      await Promise.race([consuming, ended]);
    } finally {
      abort.signal.removeEventListener('abort', end);
      end();
      await closeConnection(conn);
      // A batch of reports being recorded finishes; an RPC left hanging on a dead link is given up after a bound.
      if (consuming) await settleWithin(consuming, 2_000, 'monitor session').catch(() => undefined);
    }
  }

  async function consumeReports(conn: ChannelModel, ended: Promise<void>, endSession: () => void): Promise<void> {
    const ch = await conn.createChannel();
    let open = true;
    void ended.then(() => {
      open = false;
      ready = false;
    });
    ch.on('error', (err: unknown) => log.warn({ err }, 'broker channel error (monitor session)'));
    ch.on('close', endSession);
    const names = topologyNames(opts.exchange);
    await ch.assertExchange(names.deadLetterReports, 'topic', { durable: true });
    await ch.assertQueue(DEAD_LETTER_REPORTS_QUEUE, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum', 'x-max-length': REPORTS_MAX_LENGTH, 'x-overflow': 'drop-head' },
    });
    await ch.bindQueue(DEAD_LETTER_REPORTS_QUEUE, names.deadLetterReports, '#');
    await ch.prefetch(64);

    let buffer: ConsumeMessage[] = [];
    let pumping: Promise<void> | undefined;
    const pump = (): Promise<void> =>
      (pumping ??= (async () => {
        while (buffer.length > 0 && open) {
          const batch = buffer;
          buffer = [];
          await record(batch);
          if (open) ch.ack(batch[batch.length - 1]!, true);
        }
      })().finally(() => (pumping = undefined)));

    async function record(batch: ConsumeMessage[]): Promise<void> {
      const rows = batch.map((m) => toDeadLetterRow(m, new Date()));
      for (let attempt = 0; open && !abort.signal.aborted; attempt++) {
        try {
          const n = await recordDeadLetters(pool, rows);
          reports.inc({ outcome: 'recorded' }, n);
          reports.inc({ outcome: 'duplicate' }, rows.length - n);
          return;
        } catch (err) {
          if (!isConnectionError(err)) {
            log.error(
              { err, messageIds: rows.map((r) => r.messageId) },
              'database refused dead-letter reports; acknowledging them unrecorded',
            );
            reports.inc({ outcome: 'refused' }, rows.length);
            return;
          }
          const wait = backoffDelay(attempt, 200, 10_000);
          log.warn({ err, retryInMs: wait }, 'database unreachable; dead-letter reports wait');
          await delay(wait, abort.signal).catch(() => undefined);
        }
      }
    }

    await ch.consume(DEAD_LETTER_REPORTS_QUEUE, (msg) => {
      if (!msg) return endSession(); // cancelled by the broker (queue deleted): start over
      buffer.push(msg);
      void pump().catch((err: unknown) => {
        log.warn({ err }, 'dead-letter reports failed; reconnecting');
        endSession();
      });
    });
    if (!open) return;
    ready = true;
    log.info({ queue: DEAD_LETTER_REPORTS_QUEUE }, 'consuming dead-letter reports');

    const depthOf = queueDepthReader(conn, opts.eventsQueue);
    const readDepth = async () => {
      const depth = await depthOf();
      if (open) catchUp.queueDepth(depth); // a read that ends after the session must not overwrite its `undefined`
    };
    const depth = setInterval(() => void readDepth(), opts.depthEveryMs ?? 2000);
    void readDepth();
    try {
      await ended;
    } finally {
      clearInterval(depth); // `open` and `ready` went false when the session ended (above)
      catchUp.queueDepth(undefined);
      await pumping?.catch(() => undefined);
    }
  }

  const loop = reconnectLoop(session, { what: 'broker (monitor session)', log, signal: abort.signal });
  return {
    async stop() {
      abort.abort();
      await loop;
    },
    isReady: () => ready,
  };
}

/**
 * The depth of `queue`, or undefined while it does not exist (the monitor's consumer declares it) or the connection
 * is closing. On a channel of its own: the broker closes the channel that asks for a missing queue, and that must
 * not end the session consuming the reports.
 */
function queueDepthReader(conn: ChannelModel, queue: string): () => Promise<number | undefined> {
  let channel: Promise<Channel> | undefined;
  const open = () => {
    const opening = conn.createChannel().then((ch) => {
      ch.on('error', () => undefined); // the 404 of a missing queue: the next read opens another channel
      ch.on('close', () => {
        if (channel === opening) channel = undefined;
      });
      return ch;
    });
    return opening;
  };
  return async () => {
    const current = (channel ??= open());
    try {
      return (await (await current).checkQueue(queue)).messageCount;
    } catch {
      if (channel === current) channel = undefined;
      return undefined;
    }
  };
}
