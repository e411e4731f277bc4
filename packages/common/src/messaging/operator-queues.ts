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
import { settleWithin, TimeoutError } from '../runtime/settle';
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

/** The depth gauge, and the bound of each queue (fixed: setup's policy). */
function depthGauges(opts: { queues: readonly string[]; registry: Registry; exchange: string }) {
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
  return depth;
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
  /** How long one broker answer may take before the check gives the connection up (5 s). */
  rpcTimeoutMs?: number;
  exchange: string;
}) {
  const depth = depthGauges(opts);
  const broker = brokerConnector(opts.url);
  const abort = new AbortController();
  let conn: amqp.ChannelModel | undefined;
  let running: Promise<void> = Promise.resolve();
  // Each broker answer is awaited at most this long: on a silent link (no FIN, no RST) an RPC would wait for the
  // heartbeat, stalling every later check and the stop.
  const rpcMs = opts.rpcTimeoutMs ?? 5_000;
  const answer = <T>(p: Promise<T>, what: string) => settleWithin(p, rpcMs, `queue depth: ${what}`);

  const check = async () => {
    if (!conn) {
      const c = await broker.connect({ clientProperties: { connection_name: 'queue depth' } }, abort.signal);
      c.on('error', () => undefined);
      c.on('close', () => {
        if (conn === c) conn = undefined;
      });
      conn = c;
    }
    const c = conn;
    for (const queue of opts.queues) {
      if (abort.signal.aborted) return;
      // A passive declare of a missing queue closes its channel: one channel per queue.
      const ch = await answer(c.createChannel(), 'open a channel');
      ch.on('error', () => undefined);
      try {
        depth.set({ queue }, (await answer(ch.checkQueue(queue), queue)).messageCount);
        await answer(ch.close(), 'close a channel');
      } catch (err) {
        // A silent broker gives the connection up; a missing queue (404, its channel closed) is left out.
        if (err instanceof TimeoutError) throw err;
        depth.remove({ queue });
      }
    }
  };
  let inFlight = false;
  const tick = () => {
    // One check at a time: a slow connect must not be overtaken by the next tick (two connections, one leaked).
    if (inFlight || abort.signal.aborted) return;
    inFlight = true;
    running = check()
      .catch((err) => {
        if (abort.signal.aborted) return;
        opts.log.warn({ err }, 'queue depth check failed');
        // No depth rather than an old one: a flat line would hide a queue that grows meanwhile.
        for (const queue of opts.queues) depth.remove({ queue });
        const dead = conn;
        conn = undefined;
        return closeConnection(dead);
      })
      .finally(() => (inFlight = false));
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs ?? 15_000);
  timer.unref();
  return {
    /**
     * Gives a connect up, closes the connection (1 s at most on a silent link), and waits at most 1 s for a check in
     * progress: its own answer bound ends it (amqplib fails an RPC on a destroyed socket only at the heartbeat).
     */
    async stop() {
      abort.abort();
      clearInterval(timer);
      const c = conn;
      conn = undefined;
      await closeConnection(c);
      await settleWithin(running, 1_000, 'queue depth check').catch(() => undefined);
    },
    /** Resolves after one more check (tests). */
    async checkNow() {
      await running;
      tick();
      await running;
    },
  };
}
