/**
 * One source database relayed: sessions of (WAL source -> pipe -> confirming publisher), run again from a clean
 * state after any error by the shared reconnect loop (cf. pg-transactional-outbox's logical-replication-listener).
 * Every session starts at the slot's confirmed position, so nothing acknowledged is ever unpublished.
 */
import { brokerConnector } from '@saga/common/messaging/broker';
import { delay } from '@saga/common/runtime/lifecycle';
import type { Logger } from '@saga/common/runtime/logger';
import type { RelayConfig } from './config';
import { createPublishedCount, type RelayMetrics } from './metrics';
import { BrokerRefusalError } from './outbound';
import { restartDecision } from './restart-policy';
import { drainDeadline, runSession, type SourceContext, type SourceState } from './session';
import { createMarkerWriter } from './slot-marker';

export type { SourceState } from './session';

export type Source = {
  name: string;
  slot: string;
  start: () => void;
  /** Stop reading, wait for outstanding confirms, acknowledge, close. */
  stop: (drainBy?: number) => Promise<void>;
  state: () => SourceState;
  /** The stream's view of the lag in seconds (see lag.ts); undefined while this relay does not stream the source. */
  streamLagSeconds: (nowMs: number) => number | undefined;
};

export function createSource(
  config: RelayConfig,
  source: { name: string; url: string },
  log: Logger,
  metrics: RelayMetrics,
): Source {
  let state: SourceState = 'starting';
  let stopping = false;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  const ctx = sourceContext(config, source, log, metrics, {
    signal: abort.signal,
    stopping: () => stopping,
    setState: (s) => (state = s),
  });
  const { slot, labels } = ctx;

  async function run(): Promise<void> {
    const times = {
      baseMs: config.RELAY_RETRY_BASE_MS,
      capMs: config.RELAY_RETRY_MAX_MS,
      standbyPollMs: config.RELAY_STANDBY_POLL_MS,
    };
    for (let attempt = 0; !abort.signal.aborted; attempt++) {
      const started = Date.now();
      let wait = restartDecision(undefined, attempt, times);
      try {
        await runSession(ctx);
      } catch (err) {
        if (stopping) break;
        wait = restartDecision(err, attempt, times);
        // The next session starts small and grows, so a failure that repeats costs a small tail of duplicates; after
        // a refusal it sends one at a time up to where this one stopped, to find the message refused.
        ctx.startWindow = 1;
        if (err instanceof BrokerRefusalError) ctx.isolateThrough = err.frontier;
        metrics.reconnects.inc(labels);
        log.warn(
          { err, slot, restart: wait.kind, retryInMs: wait.delayMs, sendsAgain: ctx.sendsAgain ?? 0 },
          'session ended with an error',
        );
        ctx.sendsAgain = undefined;
      }
      if (stopping) break;
      ctx.setState('reconnecting');
      // A session that ran for a while was healthy: the backoff starts over.
      if (Date.now() - started > 30_000) attempt = 0;
      await delay(wait.delayMs, abort.signal);
    }
    ctx.setState('stopped');
  }

  return {
    name: source.name,
    slot,
    start() {
      loop ??= run();
    },
    async stop(drainBy) {
      ctx.drainBy = drainBy ?? drainDeadline(config.SHUTDOWN_TIMEOUT_MS);
      stopping = true;
      if (ctx.drainCurrent) await ctx.drainCurrent();
      abort.abort();
      await loop;
      await ctx.marker.stop();
    },
    state: () => state,
    streamLagSeconds: (nowMs) => (state === 'streaming' ? ctx.pipe?.streamLagSeconds(nowMs) : undefined),
  };
}

/** What the sessions of one source share (see SourceContext); `own` is the source's own state. */
function sourceContext(
  config: RelayConfig,
  source: { name: string; url: string },
  log: Logger,
  metrics: RelayMetrics,
  own: { signal: AbortSignal; stopping: () => boolean; setState: (s: SourceState) => void },
): SourceContext {
  const slot = `${config.RELAY_SLOT_PREFIX}_${source.name}`;
  const labels = { source: source.name };
  const appName = `cdc-relay ${source.name}`;
  const timeoutMs = config.RELAY_REPLICATION_TIMEOUT_MS ?? 60_000;
  const published = createPublishedCount(metrics.published.labels(labels), metrics.lastPublished.labels(labels));
  return {
    config,
    name: source.name,
    slot,
    appName,
    walOptions: {
      url: source.url,
      slot,
      publication: config.RELAY_PUBLICATION,
      applicationName: appName,
      timeoutMs,
      serverTimeoutMs: config.RELAY_REPLICATION_TIMEOUT_MS,
    },
    // Its own place in the broker's node list: after a lost connection this source moves to the next node.
    broker: brokerConnector(config.RABBITMQ_URL),
    log,
    metrics,
    labels,
    signal: own.signal,
    stopping: own.stopping,
    setState: (s) => {
      own.setState(s);
      metrics.streaming.set(labels, s === 'streaming' ? 1 : 0);
    },
    marker: createMarkerWriter({
      url: source.url,
      slot,
      applicationName: appName,
      intervalMs: config.RELAY_MARKER_INTERVAL_MS,
      timeoutMs,
      log,
    }),
    countPublished: published.count,
    flushPublished: published.flush,
    standbyLogged: false,
  };
}
