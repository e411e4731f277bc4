/** The pipe of one session, wired to the source's metrics, logs and slot marker. */
import { topologyNames } from '@saga/common/messaging/topology';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { tracingOn } from '@saga/common/runtime/tracing';
import { createRelayPipe, type RelayPipe } from './pipe';
import type { ConfirmingPublisher } from './publisher';
import { withPublishSpans } from './publish-spans';
import type { SourceContext } from './session';
import type { SlotInfo } from './slots';

export function buildPipe(
  ctx: SourceContext,
  publisher: ConfirmingPublisher,
  info: SlotInfo,
): { pipe: RelayPipe; failed: Promise<never> } {
  const { config, metrics, labels, log } = ctx;
  let failure!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (failure = reject));
  failed.catch(() => undefined);
  const confirmSeconds = metrics.confirmSeconds.labels(labels);
  const pipe = createRelayPipe({
    wal: {
      pause: () => ctx.stream?.pause(),
      resume: () => ctx.stream?.resume(),
      acknowledge: (lsn: bigint) => ctx.stream?.acknowledge(lsn),
    },
    publisher: tracingOn() ? withPublishSpans(publisher, ctx.name) : publisher,
    encode: (row) => encodeOutboxRow(row, ctx.name, config.RELAY_OUTBOX_TABLE, publisher.limits),
    source: ctx.name,
    table: config.RELAY_OUTBOX_TABLE,
    exchange: config.EVENTS_EXCHANGE,
    invalidQueue: topologyNames(config.EVENTS_EXCHANGE).invalidQueue,
    maxInFlight: config.RELAY_MAX_IN_FLIGHT,
    startWindow: ctx.startWindow,
    orderPerAggregate: config.RELAY_ORDER_PER_AGGREGATE === 'true',
    isolateThrough: ctx.isolateThrough,
    retry: { baseMs: config.RELAY_RETRY_BASE_MS, capMs: config.RELAY_RETRY_MAX_MS },
    acked: info.confirmed,
    resume: ctx.resume,
    onFail: (err) => failure(err),
    events: {
      published: ctx.countPublished,
      resent: () => metrics.sentAgain.inc({ ...labels, cause: 'nack' }),
      // Every stored message, invalid ones too: what it settled may be acknowledged at the next flush.
      confirmSeconds: (s) => {
        confirmSeconds.observe(s);
        ctx.flushSoon?.();
      },
      invalid: (reason, row) => {
        // Never dropped, never a crash loop: kept where an operator will see it.
        metrics.invalid.inc(labels);
        log.error({ reason, id: row.id }, 'outbox row is not a valid event; sent to the invalid queue');
      },
      refused: (messageId, why) => {
        metrics.nacks.inc(labels);
        log.warn({ messageId, code: why.code, reason: why.text }, 'broker did not store a message');
      },
      acknowledged: (lsn, commitTimeUs) => {
        // Counted before the slot can move: whoever sees the slot past a message sees it counted as published.
        ctx.flushPublished();
        metrics.acknowledgedLsn.set(labels, Number(lsn));
        ctx.marker.note(lsn, commitTimeUs);
        if (commitTimeUs !== undefined && commitTimeUs !== ctx.ackedCommitTimeUs) {
          ctx.ackedCommitTimeUs = commitTimeUs;
          metrics.acknowledgedCommitTime.set(labels, Number(commitTimeUs) / 1e6);
        }
      },
    },
  });
  metrics.acknowledgedLsn.set(labels, Number(info.confirmed));
  return { pipe, failed };
}
