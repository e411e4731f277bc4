/**
 * The queues where messages wait for a person: `<exchange>.unroutable` (events no binding matched),
 * `<exchange>.invalid` (outbox rows the relay could not turn into an event) and each `<service>.events.dlq`.
 * Their bounds, applied by a RabbitMQ policy (setup), and a gauge of their depth for alerting.
 */
import type amqp from 'amqplib';
import { Gauge, type Registry } from 'prom-client';
import { consumerQueueNames, topologyNames } from './topology';
import { brokerConnector, closeConnection } from './broker';
import type { Logger } from '../runtime/logger';
import { consumerQueueOf, type DatabaseOwner } from '../contracts/service-names';

/**
 * Bounds, set by policy rather than queue arguments: arguments cannot change on an existing queue (redeclaring
 * with others fails with PRECONDITION_FAILED), a policy applies to existing queues too, so an upgraded broker gets
 * it from the next setup. Past the length the oldest message is dropped: alert on the depth gauge long before.
 * Unroutable events are a by-product (an event nobody subscribes to yet), so they also expire after a day.
 */
export const QUEUE_BOUNDS = {
  unroutable: { 'max-length': 10_000, 'message-ttl': 86_400_000, overflow: 'drop-head' },
  operator: { 'max-length': 10_000, overflow: 'drop-head' },
  /**
   * The monitor's queue is bound to every event. The monitor is an observer: while it is down or not deployed its
   * queue must not grow until the broker's memory or disk alarm blocks every publisher (the relay with them, and so
   * the saga). Past the bound the oldest event goes (drop-head, never reject-publish: the relay would take a nack
   * for a failed publish and send again). The policy wins over the queue's own x-overflow argument.
   */
  observer: { 'max-length': 100_000, overflow: 'drop-head' },
} as const;

/** The queue of the saga monitor: an observer, bounded by its own policy. */
export const OBSERVER_QUEUE_PATTERN = '^monitor\\.events$';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The policies setup applies to the broker's vhost: name, queue-name pattern, definition. */
export function queuePolicies(
  exchange: string,
  observerMaxLength: number = QUEUE_BOUNDS.observer['max-length'],
): { name: string; pattern: string; definition: Record<string, string | number> }[] {
  const t = topologyNames(exchange);
  return [
    {
      name: 'saga-observer-bound',
      pattern: OBSERVER_QUEUE_PATTERN,
      definition: { ...QUEUE_BOUNDS.observer, 'max-length': observerMaxLength },
    },
    { name: 'saga-unroutable-bound', pattern: `^${escape(t.unroutableQueue)}$`, definition: QUEUE_BOUNDS.unroutable },
    {
      name: 'saga-operator-queue-bound',
      pattern: `^(${escape(t.invalidQueue)}|.+\\.events\\.dlq)$`,
      definition: QUEUE_BOUNDS.operator,
    },
  ];
}

export function operatorQueues(exchange: string, services: readonly DatabaseOwner[]): string[] {
  const t = topologyNames(exchange);
  return [t.unroutableQueue, t.invalidQueue, ...services.map((s) => consumerQueueNames(consumerQueueOf(s)).dlq)];
}

/**
 * Every `intervalMs`, read each queue's depth (a passive declare: it creates nothing) into
 * `saga_operator_queue_messages{queue}`, and its bound into `saga_operator_queue_max_length{queue}`.
 * A queue that does not exist yet is left out; a lost connection is opened again at the next tick.
 */
export function startQueueDepthGauge(opts: {
  url: string;
  queues: readonly string[];
  registry: Registry;
  log: Logger;
  intervalMs?: number;
  exchange: string;
}) {
  const depth = new Gauge({
    name: 'saga_operator_queue_messages',
    help: 'Messages waiting in an operator queue (unroutable, invalid, dead-letter): alert when above 0 (invalid, dlq) or growing',
    labelNames: ['queue'] as const,
    registers: [opts.registry],
  });
  const bound = new Gauge({
    name: 'saga_operator_queue_max_length',
    help: "The length past which an operator queue drops its oldest message (setup's policy)",
    labelNames: ['queue'] as const,
    registers: [opts.registry],
  });
  const unroutable = topologyNames(opts.exchange).unroutableQueue;
  for (const q of opts.queues)
    bound.set({ queue: q }, (q === unroutable ? QUEUE_BOUNDS.unroutable : QUEUE_BOUNDS.operator)['max-length']);
  const broker = brokerConnector(opts.url);
  let conn: amqp.ChannelModel | undefined;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();

  const check = async () => {
    if (!conn) {
      conn = await broker.connect({ clientProperties: { connection_name: 'queue depth' } });
      conn.on('error', () => undefined);
      conn.on('close', () => (conn = undefined));
    }
    for (const queue of opts.queues) {
      // A passive declare of a missing queue closes its channel: one channel per queue.
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      try {
        depth.set({ queue }, (await ch.checkQueue(queue)).messageCount);
        await ch.close();
      } catch {
        depth.remove({ queue });
      }
    }
  };
  let inFlight = false;
  const tick = () => {
    // One check at a time: a slow connect must not be overtaken by the next tick (two connections, one leaked).
    if (inFlight) return;
    inFlight = true;
    running = check()
      .catch((err) => {
        opts.log.warn({ err }, 'queue depth check failed');
        void closeConnection(conn);
        conn = undefined;
      })
      .finally(() => (inFlight = false));
  };
  tick();
  const timer = setInterval(() => !stopped && tick(), opts.intervalMs ?? 15_000);
  timer.unref();
  return {
    /** Resolves after the check in progress, with the connection closed. */
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      await closeConnection(conn);
    },
    /** Resolves after one more check (tests). */
    async checkNow() {
      await running;
      tick();
      await running;
    },
  };
}
