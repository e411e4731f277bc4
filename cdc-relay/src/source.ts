/**
 * One source database relayed: sessions of (WAL source -> pipe -> confirming publisher), run again from a clean
 * state after any error by the shared reconnect loop (cf. pg-transactional-outbox's logical-replication-listener).
 * Every session starts at the slot's confirmed position, so nothing acknowledged is ever unpublished.
 */
import { topologyNames } from '@saga/common/messaging/topology';
import { brokerConnector } from '@saga/common/messaging/broker';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { delay, reconnectLoop } from '@saga/common/runtime/lifecycle';
import type { Logger } from '@saga/common/runtime/logger';
import { isPgError } from '@saga/common/db/pg';
import { tracingOn } from '@saga/common/runtime/tracing';
import type { RelayConfig } from './config';
import { livenessIntervalMs, livenessTick } from './liveness';
import { formatLsn } from './lsn';
import type { RelayMetrics } from './metrics';
import { createRelayPipe, SessionError, type RelayPipe } from './pipe';
import { withPublishSpans } from './publish-spans';
import { connectPublisher } from './publisher';
import { ensureSlot, openWalStream, SlotLostError, SlotMissingError, type WalStream } from './wal-source';

export type SourceState = 'starting' | 'streaming' | 'standby' | 'reconnecting' | 'stopped';

export type Source = {
  name: string;
  slot: string;
  start: () => void;
  /** Stop reading, wait for outstanding confirms, acknowledge, close. */
  stop: () => Promise<void>;
  state: () => SourceState;
  /** The stream's view of the lag in seconds (see lag.ts); undefined while this relay does not stream the source. */
  streamLagSeconds: (nowMs: number) => number | undefined;
};

/** SQLSTATE 55006 object_in_use: the slot is streamed by another relay (we are the standby). */
const SLOT_IN_USE = '55006';

export function createSource(
  config: RelayConfig,
  source: { name: string; url: string },
  log: Logger,
  metrics: RelayMetrics,
): Source {
  const slot = `${config.RELAY_SLOT_PREFIX}_${source.name}`;
  const labels = { source: source.name };
  const names = topologyNames(config.EVENTS_EXCHANGE);
  const appName = `cdc-relay ${source.name}`;
  // Its own place in the broker's node list: after a lost connection this source moves to the next node.
  const broker = brokerConnector(config.RABBITMQ_URL);
  const walOptions = {
    url: source.url,
    slot,
    publication: config.RELAY_PUBLICATION,
    applicationName: appName,
    createSlot: config.RELAY_CREATE_SLOT,
    timeoutMs: config.RELAY_REPLICATION_TIMEOUT_MS ?? 60_000,
    serverTimeoutMs: config.RELAY_REPLICATION_TIMEOUT_MS,
    onCreated: () =>
      log.warn({ slot }, 'created replication slot (RELAY_CREATE_SLOT): it starts at the current position'),
  };
  let state: SourceState = 'starting';
  let stopping = false;
  let drainCurrent: (() => Promise<void>) | undefined;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;
  let standbyLogged = false;
  // Once this process has used the slot, a missing slot means it was lost (a failover to a server without it, or
  // dropped): recreating it at the current position would skip every event in between, whatever RELAY_CREATE_SLOT
  // says. The relay reports it and waits for the operator (README: "PostgreSQL failover").
  let slotKnown = false;
  let ackedCommitTimeUs: bigint | undefined;
  // Labelled children resolved once: the hot path does no label lookups.
  const confirmSeconds = metrics.confirmSeconds.labels(labels);
  const publishedCount = metrics.published.labels(labels);
  // The current session's pipe, for the stream's lag.
  let pipe: RelayPipe | undefined;
  // Confirmed messages not yet added to the counter: a prom-client increment per message costs more than the rest
  // of its bookkeeping in the pipe; the counter is brought up to date every acknowledgement interval and at the end.
  let publishedSinceFlush = 0;
  const flushPublished = () => {
    if (publishedSinceFlush === 0) return;
    publishedCount.inc(publishedSinceFlush);
    publishedSinceFlush = 0;
  };

  const setState = (s: SourceState) => {
    state = s;
    metrics.streaming.set(labels, s === 'streaming' ? 1 : 0);
  };

  /** One session; ends (throws) on any error. */
  async function session(): Promise<void> {
    let info;
    try {
      info = await ensureSlot({ ...walOptions, createSlot: walOptions.createSlot && !slotKnown });
      metrics.slotMissing.set(labels, 0);
      metrics.slotLost.set(labels, 0);
    } catch (err) {
      const reconcileFrom =
        ackedCommitTimeUs === undefined ? undefined : new Date(Number(ackedCommitTimeUs / 1000n)).toISOString();
      if (err instanceof SlotMissingError) metrics.slotMissing.set(labels, 1);
      if (err instanceof SlotLostError) metrics.slotLost.set(labels, 1);
      if (err instanceof SlotMissingError && slotKnown) {
        log.error(
          { err, slot, lastAcknowledgedCommitTime: reconcileFrom },
          'replication slot disappeared (database failover or dropped slot); not recreating it: create the slot, then reconcile from before the last acknowledged commit time (README: PostgreSQL failover)',
        );
      } else if (err instanceof SlotMissingError) {
        log.error({ err, slot }, 'replication slot is missing; not creating it (RELAY_CREATE_SLOT is off)');
      }
      if (err instanceof SlotLostError)
        log.error(
          { err, slot, lastAcknowledgedCommitTime: reconcileFrom },
          'replication slot is lost; see the README for recovery',
        );
      throw err;
    }
    slotKnown = true;
    const timeoutMs =
      config.RELAY_REPLICATION_TIMEOUT_MS ?? (info.walSenderTimeoutMs > 0 ? info.walSenderTimeoutMs : 60_000);

    const publisher = await connectPublisher({
      broker,
      name: appName,
      exchange: config.EVENTS_EXCHANGE,
      maxBodyBytes: config.RELAY_MAX_MESSAGE_BYTES,
      onReturned: (messageId) => {
        metrics.returned.inc(labels);
        log.error({ messageId }, 'broker returned a message as unroutable; it counts as not stored');
      },
    });
    let stream: WalStream | undefined;
    const timers: NodeJS.Timeout[] = [];
    let failure!: (err: Error) => void;
    const failed = new Promise<never>((_, reject) => (failure = reject));
    failed.catch(() => undefined);
    try {
      const wal = {
        pause: () => stream?.pause(),
        resume: () => stream?.resume(),
        acknowledge: (lsn: bigint) => stream?.acknowledge(lsn),
      };
      const p = createRelayPipe({
        wal,
        publisher: tracingOn() ? withPublishSpans(publisher, source.name) : publisher,
        encode: (row) => encodeOutboxRow(row, source.name, config.RELAY_OUTBOX_TABLE, publisher.limits),
        source: source.name,
        table: config.RELAY_OUTBOX_TABLE,
        exchange: config.EVENTS_EXCHANGE,
        invalidQueue: names.invalidQueue,
        maxInFlight: config.RELAY_MAX_IN_FLIGHT,
        acked: info.confirmed,
        onFail: (err) => failure(err),
        events: {
          published: () => void publishedSinceFlush++,
          confirmSeconds: (s) => confirmSeconds.observe(s),
          invalid: (reason, row) => {
            // Never dropped, never a crash loop: kept where an operator will see it.
            metrics.invalid.inc(labels);
            log.error({ reason, id: row.id }, 'outbox row is not a valid event; sent to the invalid queue');
          },
          refused: (messageId) => {
            metrics.nacks.inc(labels);
            log.warn(
              { messageId },
              'broker did not store a message; the session restarts from the last acknowledged position',
            );
          },
          acknowledged: (lsn, commitTimeUs) => {
            metrics.acknowledgedLsn.set(labels, Number(lsn));
            if (commitTimeUs !== undefined && commitTimeUs !== ackedCommitTimeUs) {
              ackedCommitTimeUs = commitTimeUs;
              metrics.acknowledgedCommitTime.set(labels, Number(commitTimeUs) / 1e6);
            }
          },
        },
      });
      pipe = p;
      publisher.onWritable(() => p.onWritable());
      metrics.acknowledgedLsn.set(labels, Number(info.confirmed));
      void publisher.lost.catch((err: Error) => p.fail(new SessionError(err.message)));

      if (stopping) return;
      stream = await connectStream(p, timeoutMs);
      const s = stream;
      timers.push(
        setInterval(() => {
          p.flushAck();
          flushPublished();
          metrics.inFlight.set(labels, p.inFlight());
        }, config.RELAY_ACK_INTERVAL_MS),
        // Liveness: ask for a keepalive a few times per timeout (a status update also keeps the server from timing
        // us out while reading is paused), and take a stream silent for the whole timeout for dead. Silence while
        // paused is ours, not the server's: TCP keepalive covers that time.
        setInterval(() => {
          if (livenessTick(p, s, timeoutMs)) metrics.livenessTimeouts.inc(labels);
        }, livenessIntervalMs(timeoutMs)),
      );
      drainCurrent = async () => {
        await p.drain(Date.now() + config.SHUTDOWN_TIMEOUT_MS - 1000);
        flushPublished();
        log.info({ acknowledged: formatLsn(p.acked()), unconfirmed: p.inFlight() }, 'drained');
        await s.stop();
      };
      if (stopping) return void (await drainCurrent());
      await Promise.race([
        s.ended.then(() => {
          if (!stopping) throw new SessionError('replication stream ended');
        }),
        failed,
      ]);
    } finally {
      drainCurrent = undefined;
      for (const t of timers) clearInterval(t);
      flushPublished();
      if (state === 'streaming') setState('reconnecting');
      await stream?.stop();
      await publisher.close();
    }

    /** Start streaming; while another relay streams the slot, stand by and try again (not an alarm). */
    async function connectStream(p: RelayPipe, timeoutMs: number): Promise<WalStream> {
      for (;;) {
        const s = openWalStream(
          { ...walOptions, keepAliveMs: config.RELAY_TCP_KEEPALIVE_MS },
          {
            onStart: () => {
              standbyLogged = false;
              setState('streaming');
              log.info({ slot, from: formatLsn(p.acked()), timeoutMs, broker: publisher.broker }, 'streaming');
            },
            onMessage: (m) => p.onMessage(m),
            onKeepalive: (walEnd, respond) => p.onKeepalive(walEnd, respond),
          },
        );
        // The stream either starts (then `ended` stays pending) or fails at once, e.g. with 55006.
        const started = await Promise.race([
          s.ended.then(
            () => false,
            (err: unknown) => err,
          ),
          s.started.then(() => true as const),
          delay(Math.max(timeoutMs, 10_000), abort.signal).then(
            () => new SessionError('replication did not start in time'),
          ),
        ]);
        if (started === true) return s;
        await s.stop();
        if (!isPgError(started, SLOT_IN_USE) || stopping)
          throw started instanceof Error ? started : new SessionError('replication stream ended');
        if (!standbyLogged) log.info({ slot }, 'slot is streamed by another relay; standing by');
        standbyLogged = true;
        setState('standby');
        await delay(config.RELAY_STANDBY_POLL_MS, abort.signal);
        if (stopping) throw new SessionError('stopped');
      }
    }
  }

  async function run(): Promise<void> {
    await reconnectLoop(
      async () => {
        try {
          await session();
        } catch (err) {
          if (stopping) return;
          metrics.reconnects.inc(labels);
          log.warn({ err, slot }, 'session ended with an error');
        } finally {
          if (!stopping) setState('reconnecting');
        }
      },
      {
        what: `relay source ${source.name}`,
        log,
        signal: abort.signal,
        baseMs: config.RELAY_RETRY_BASE_MS,
        capMs: config.RELAY_RETRY_MAX_MS,
      },
    );
    setState('stopped');
  }

  return {
    name: source.name,
    slot,
    start() {
      loop ??= run();
    },
    async stop() {
      stopping = true;
      if (drainCurrent) await drainCurrent();
      abort.abort();
      await loop;
    },
    state: () => state,
    streamLagSeconds: (nowMs) => (state === 'streaming' ? pipe?.streamLagSeconds(nowMs) : undefined),
  };
}
