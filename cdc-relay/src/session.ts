/**
 * One relay session of one source: check the slot, connect the confirming publisher, start the stream (standing by
 * while another relay streams the slot), run until the first error. Every session starts from the slot's confirmed
 * position, so nothing acknowledged is ever unpublished; the source's loop runs the next one (source.ts).
 */
import type { BrokerConnector } from '@saga/common/messaging/broker';
import { delay } from '@saga/common/runtime/lifecycle';
import { untilAborted } from '@saga/common/runtime/settle';
import type { Logger } from '@saga/common/runtime/logger';
import type { RelayConfig } from './config';
import { formatLsn } from './lsn';
import type { RelayMetrics } from './metrics';
import { SessionError, type RelayPipe } from './pipe';
import { restartDecision } from './restart-policy';
import { startTimers } from './session-timers';
import { buildPipe } from './session-pipe';
import { connectPublisher, type ConfirmingPublisher } from './publisher';
import { ensureSlot, SlotLostError, SlotMissingError, type SlotInfo } from './slots';
import type { MarkerWriter } from './slot-marker';
import type { TxProgress } from './tx-progress';
import { openWalStream, withSourceClient, type WalSourceOptions, type WalStream } from './wal-source';

export type SourceState = 'starting' | 'streaming' | 'standby' | 'reconnecting' | 'stopped';

/** Only the kind matters here (55006: the slot is streamed by another relay, we are the standby). */
const STANDBY_TIMES = { baseMs: 0, capMs: 0, standbyPollMs: 0 };

/** What a source's sessions share: its settings, its ports, and what one session leaves for the next. */
export type SourceContext = {
  config: RelayConfig;
  name: string;
  slot: string;
  appName: string;
  walOptions: WalSourceOptions;
  broker: BrokerConnector;
  log: Logger;
  metrics: RelayMetrics;
  labels: { source: string };
  signal: AbortSignal;
  stopping: () => boolean;
  setState: (s: SourceState) => void;
  marker: MarkerWriter;
  /** Confirmed messages not yet added to the published counter (flushed every acknowledgement interval). */
  flushPublished: () => void;
  countPublished: () => void;
  /** Commit time of the last transaction this process acknowledged (µs), across sessions. */
  ackedCommitTimeUs?: bigint;
  /** The current session's pipe (for the stream's lag) and stream. */
  pipe?: RelayPipe;
  stream?: WalStream;
  /** Set while a session streams: flushes acknowledgements shortly (startTimers), after a message or a confirm. */
  flushSoon?: () => void;
  /** Set while a session streams: drains it for a clean stop. */
  drainCurrent?: () => Promise<void>;
  /** Set by the stop: when a drain gives up (drainDeadline, from the moment the stop began). */
  drainBy?: number;
  standbyLogged: boolean;
  /** Set by a failed session for the next one: its first window, and the row to send one at a time up to. */
  startWindow?: number;
  isolateThrough?: string;
  /** Left by a session for the next one: what it stored of transactions it did not acknowledge (tx-progress.ts). */
  resume?: ReadonlyMap<string, TxProgress>;
  /** Left by a failed session: how many messages the next one sends again (for the log line of the failure). */
  sendsAgain?: number;
};

/**
 * What a stop needs after the drain, within SHUTDOWN_TIMEOUT_MS, on dead links: the stream's stop and the
 * publisher's close (1 s each at most), the slot marker's last write and its connection's end (MARKER_STOP_MS, 2 s),
 * the tracing exporter's flush (3 s at most). The slot gauges' pools end beside the drain, and the HTTP listener
 * waits only for a scrape in progress (its reads are bounded too). A drain that a silent broker keeps to its deadline
 * must still leave that, or the process exits 1 for a stop that lost nothing.
 */
export const AFTER_DRAIN_MS = 7_000;

/** The drain's deadline: the shutdown timeout less AFTER_DRAIN_MS, and at least half of it. */
export const drainDeadline = (shutdownTimeoutMs: number, now = Date.now()): number =>
  now + Math.max(shutdownTimeoutMs / 2, shutdownTimeoutMs - AFTER_DRAIN_MS);

/** One session; ends (throws) on any error. */
export async function runSession(ctx: SourceContext): Promise<void> {
  // The slot is checked before the broker is touched: a missing slot is reported without a connection to RabbitMQ.
  const info = await checkSlot(ctx);
  const publisher = await connectSessionPublisher(ctx);
  publisher.onWritable(() => ctx.pipe?.onWritable());
  void publisher.lost.catch((err: Error) => ctx.pipe?.fail(new SessionError(err.message)));
  let started: { stream: WalStream; pipe: RelayPipe; failed: Promise<never>; timeoutMs: number } | undefined;
  let stopTimers = () => undefined as void;
  try {
    started = await startStreaming(ctx, publisher, info);
    if (!started) return;
    const { stream, pipe, failed, timeoutMs } = started;
    stopTimers = startTimers(ctx, pipe, stream, timeoutMs);
    ctx.drainCurrent = async () => {
      await pipe.drain(ctx.drainBy ?? drainDeadline(ctx.config.SHUTDOWN_TIMEOUT_MS));
      ctx.flushPublished();
      ctx.log.info({ acknowledged: formatLsn(pipe.acked()), unconfirmed: pipe.inFlight() }, 'drained');
      await stream.stop();
    };
    if (ctx.stopping()) return void (await ctx.drainCurrent());
    await Promise.race([
      stream.ended.then(() => {
        if (!ctx.stopping()) throw new SessionError('replication stream ended');
      }),
      failed,
    ]);
  } finally {
    ctx.drainCurrent = undefined;
    stopTimers();
    if (started) keepProgress(ctx, started.pipe);
    // Whatever is unsettled now is abandoned with the session, not refused by the broker.
    started?.pipe.close();
    ctx.flushPublished();
    await started?.stream.stop();
    await publisher.close();
  }
}

/**
 * What the next session needs of this one: the stored part of each transaction not acknowledged, so that it does not
 * send that again; and the duplicate tail, what it will send again, counted (relay_messages_sent_again_total).
 */
function keepProgress(ctx: SourceContext, pipe: RelayPipe): void {
  ctx.resume = pipe.progress();
  if (ctx.stopping()) return;
  const again = pipe.toSendAgain();
  ctx.sendsAgain = again;
  if (again > 0) ctx.metrics.sentAgain.inc({ ...ctx.labels, cause: 'restart' }, again);
}

/** The slot as it is now (created on a first install where allowed); a missing or lost slot is reported and thrown. */
export async function checkSlot(ctx: SourceContext): Promise<SlotInfo> {
  const { metrics, labels, config } = ctx;
  try {
    // A stop does not wait for a database that does not answer (the bound is the replication timeout, 60 s).
    const checking = withSourceClient(ctx.walOptions, (c) =>
      ensureSlot(c, {
        slot: ctx.slot,
        source: ctx.name,
        create: config.RELAY_CREATE_SLOT,
        streamed: true,
        timeoutMs: ctx.walOptions.timeoutMs,
        onCreated: () =>
          ctx.log.warn(
            { slot: ctx.slot },
            'created replication slot (first install, RELAY_CREATE_SLOT): it starts at the current position',
          ),
      }),
    );
    const info = await untilAborted(checking, ctx.signal, 'slot check');
    metrics.slotMissing.set(labels, 0);
    metrics.slotLost.set(labels, 0);
    if (ctx.ackedCommitTimeUs === undefined && info.reconcileFrom)
      metrics.acknowledgedCommitTime.set(labels, info.reconcileFrom.getTime() / 1000);
    return info;
  } catch (err) {
    reportSlotError(ctx, err);
    throw err;
  }
}

/** The later of the marker's time and this process's last acknowledged commit: where a reconcile starts. */
function reconcilePoint(ctx: SourceContext, fromMarker: Date | undefined): Date | undefined {
  const mine = ctx.ackedCommitTimeUs === undefined ? undefined : Number(ctx.ackedCommitTimeUs / 1000n);
  const marker = fromMarker?.getTime();
  const ms = mine === undefined ? marker : marker === undefined ? mine : Math.max(mine, marker);
  return ms === undefined ? undefined : new Date(ms);
}

function reportSlotError(ctx: SourceContext, err: unknown): void {
  if (!(err instanceof SlotMissingError) && !(err instanceof SlotLostError)) return;
  const { metrics, labels, log, slot } = ctx;
  const from = reconcilePoint(ctx, err.reconcileFrom);
  if (from) metrics.acknowledgedCommitTime.set(labels, from.getTime() / 1000);
  const recover = `npm run relay -- recover --source ${ctx.name}`;
  if (err instanceof SlotLostError) {
    metrics.slotLost.set(labels, 1);
    log.error(
      { err, slot, lastAcknowledgedCommitTime: from?.toISOString(), recover },
      'replication slot is lost; not streaming: recover it (docs/failover.md)',
    );
  } else if (err.reconcileFrom) {
    metrics.slotMissing.set(labels, 1);
    log.error(
      { err, slot, lastAcknowledgedCommitTime: from?.toISOString(), recover },
      'replication slot disappeared (database failover or dropped slot); not recreating it: recover it, which reconciles from the last acknowledged commit time (docs/failover.md)',
    );
  } else {
    metrics.slotMissing.set(labels, 1);
    log.error({ err, slot }, 'replication slot is missing; not creating it (RELAY_CREATE_SLOT is off)');
  }
}

function connectSessionPublisher(ctx: SourceContext): Promise<ConfirmingPublisher> {
  return connectPublisher({
    broker: ctx.broker,
    name: ctx.appName,
    exchange: ctx.config.EVENTS_EXCHANGE,
    maxBodyBytes: ctx.config.RELAY_MAX_MESSAGE_BYTES,
    signal: ctx.signal,
    onReturned: (messageId) => {
      ctx.metrics.returned.inc(ctx.labels);
      ctx.log.error({ messageId }, 'broker returned a message as unroutable; it counts as not stored');
    },
  });
}

/**
 * Start streaming; while another relay streams the slot, stand by and try again (not an alarm). Each try reads the
 * slot again and builds a new pipe from its position: a standby that becomes active starts from where the other
 * relay left the slot, not from what it read before waiting. Undefined when stopped meanwhile.
 */
async function startStreaming(ctx: SourceContext, publisher: ConfirmingPublisher, checked: SlotInfo) {
  for (let first = true; ; first = false) {
    const info = first ? checked : await checkSlot(ctx);
    const timeoutMs =
      ctx.config.RELAY_REPLICATION_TIMEOUT_MS ?? (info.walSenderTimeoutMs > 0 ? info.walSenderTimeoutMs : 60_000);
    if (ctx.stopping()) return undefined;
    const { pipe, failed } = buildPipe(ctx, publisher, info);
    ctx.pipe = pipe;
    const stream = openWalStream(
      { ...ctx.walOptions, keepAliveMs: ctx.config.RELAY_TCP_KEEPALIVE_MS },
      {
        onStart: () => {
          ctx.standbyLogged = false;
          ctx.setState('streaming');
          ctx.log.info(
            { slot: ctx.slot, from: formatLsn(pipe.acked()), timeoutMs, broker: publisher.broker },
            'streaming',
          );
        },
        onMessage: (m) => {
          pipe.onMessage(m);
          ctx.flushSoon?.();
        },
        onKeepalive: (walEnd, respond) => pipe.onKeepalive(walEnd, respond),
      },
    );
    ctx.stream = stream;
    const outcome = await startedWithin(stream, Math.max(timeoutMs, 10_000), ctx.signal);
    if (outcome === true) {
      ctx.startWindow = undefined;
      ctx.isolateThrough = undefined;
      return { stream, pipe, failed, timeoutMs };
    }
    pipe.close();
    await stream.stop();
    if (restartDecision(outcome, 0, STANDBY_TIMES).kind !== 'standby' || ctx.stopping())
      throw outcome instanceof Error ? outcome : new SessionError('replication stream ended');
    if (!ctx.standbyLogged) ctx.log.info({ slot: ctx.slot }, 'slot is streamed by another relay; standing by');
    ctx.standbyLogged = true;
    ctx.setState('standby');
    await delay(ctx.config.RELAY_STANDBY_POLL_MS, ctx.signal);
    if (ctx.stopping()) throw new SessionError('stopped');
  }
}

/**
 * true when the stream started; else why not (an error, e.g. 55006, or a timeout). The timer and the abort listener
 * are removed whichever way it ends: a standby polls every second and must not pile them up.
 */
export async function startedWithin(
  s: Pick<WalStream, 'started' | 'ended'>,
  ms: number,
  signal: AbortSignal,
): Promise<true | unknown> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      s.ended.then(
        () => new SessionError('replication stream ended'),
        (err: unknown) => err,
      ),
      s.started.then(() => true as const),
      new Promise<SessionError>((resolve) => {
        timer = setTimeout(() => resolve(new SessionError('replication did not start in time')), ms);
        onAbort = () => resolve(new SessionError('stopped'));
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
