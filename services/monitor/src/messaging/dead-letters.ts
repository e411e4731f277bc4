import type { ConsumeMessage } from 'amqplib';
import { consumerQueueNames, topologyNames } from '@saga/common/amqp';
import { connectBroker } from '@saga/common/broker';
import { DEAD_LETTER_HEADER as DLH } from '@saga/common/envelope';
import { reconnectLoop } from '@saga/common/lifecycle';
import type { Logger } from '@saga/common/logger';
import { inboxClaim, withTransaction } from '@saga/common/outbox';
import type pg from 'pg';
import { recordDeadLetters, type DeadLetterRow } from '../db/saga-repository';

/** The monitor's queue of dead-letter reports, and its consumer name in the inbox. */
export const DEAD_LETTER_REPORTS_QUEUE = 'monitor.dead-letter-reports';

/**
 * A dead-letter report (a copy of a message a consumer parked in its dead-letter queue) as the monitor keeps it.
 * Pure. The key includes the time it was parked: a message replayed and dead-lettered again is a second report.
 */
export function toDeadLetterRow(msg: Pick<ConsumeMessage, 'properties' | 'fields'>, now: Date): DeadLetterRow & { key: string } {
  const h = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : null);
  const at = str(h[DLH.at]);
  const parsed = at ? new Date(at) : now;
  const when = Number.isNaN(parsed.getTime()) ? now : parsed;
  const messageId = str(msg.properties.messageId) ?? str(h.id) ?? 'unknown';
  const queue = str(h[DLH.by]) ?? msg.fields.routingKey.replace(/\.dlq$/, '');
  return {
    key: `${messageId}@${queue}@${when.toISOString()}`,
    messageId,
    queue: consumerQueueNames(queue).dlq,
    orderId: str(msg.properties.correlationId) ?? str(h.correlationId),
    type: str(msg.properties.type),
    reason: str(h[DLH.reason]),
    error: str(h[DLH.error]),
    at: when,
  };
}

/**
 * Consume the reports consumers publish when they dead-letter a message, into `dead_letters` (exactly once in
 * effect through the inbox), so that a stuck saga says whether a message of it waits in a dead-letter queue. The
 * reports queue is the monitor's own; the dead-letter queues are never read, so an operator's replay is unaffected.
 */
export function startDeadLetterReports(opts: { url: string; exchange: string; pool: pg.Pool; log: Logger }): { stop: () => Promise<void> } {
  const { pool, log } = opts;
  const abort = new AbortController();
  let closeConn: (() => Promise<void>) | undefined;

  async function session(): Promise<void> {
    const conn = await connectBroker(opts.url, { clientProperties: { connection_name: `monitor ${DEAD_LETTER_REPORTS_QUEUE}` } });
    closeConn = () => conn.close().catch(() => undefined);
    const closed = new Promise<void>((resolve) => conn.on('close', () => resolve()));
    conn.on('error', (err: unknown) => log.warn({ err }, 'broker connection error (dead-letter reports)'));
    const ch = await conn.createChannel();
    const names = topologyNames(opts.exchange);
    await ch.assertExchange(names.deadLetterReports, 'topic', { durable: true });
    await ch.assertQueue(DEAD_LETTER_REPORTS_QUEUE, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(DEAD_LETTER_REPORTS_QUEUE, names.deadLetterReports, '#');
    await ch.prefetch(32);
    await ch.consume(DEAD_LETTER_REPORTS_QUEUE, (msg) => {
      if (!msg) return;
      const row = toDeadLetterRow(msg, new Date());
      withTransaction(pool, (c) => recordDeadLetters(c, inboxClaim(DEAD_LETTER_REPORTS_QUEUE, [{ id: row.key, type: row.type ?? 'unknown' }]), [row])).then(
        () => ch.ack(msg),
        (err: unknown) => {
          // The database is unreachable or refused it: the report returns to the queue when the channel closes.
          log.warn({ err, messageId: row.messageId }, 'could not record a dead-letter report; reconnecting');
          void conn.close().catch(() => undefined);
        },
      );
    });
    log.info({ queue: DEAD_LETTER_REPORTS_QUEUE }, 'consuming dead-letter reports');
    await closed;
  }

  const loop = reconnectLoop(session, { what: 'broker (dead-letter reports)', log, signal: abort.signal });
  return {
    async stop() {
      abort.abort();
      await closeConn?.();
      await loop;
    },
  };
}
