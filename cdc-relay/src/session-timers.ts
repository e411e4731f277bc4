/** The timers of a streaming session: the acknowledgement flush and the liveness check. */
import { livenessIntervalMs, livenessTick } from './liveness';
import type { RelayPipe } from './pipe';
import type { SourceContext } from './session';
import type { WalStream } from './wal-source';

/**
 * The session's timers; returns their stop. The acknowledgement flush (the slot's position to PostgreSQL, the
 * published counter, the in-flight gauge) runs RELAY_ACK_INTERVAL_MS after the first WAL message or confirm since the
 * last flush, not on a fixed beat: an idle relay does not wake up 50 times a second per source for nothing. A quiet
 * outbox's slot still moves with the server's keepalives (the pipe's onKeepalive).
 */
export function startTimers(ctx: SourceContext, p: RelayPipe, s: WalStream, timeoutMs: number): () => void {
  const { metrics, labels } = ctx;
  let armed: NodeJS.Timeout | undefined;
  const flush = () => {
    armed = undefined;
    p.flushAck();
    ctx.flushPublished();
    metrics.inFlight.set(labels, p.inFlight());
  };
  ctx.flushSoon = () => void (armed ??= setTimeout(flush, ctx.config.RELAY_ACK_INTERVAL_MS));
  // What the session handled before its timers started (its first messages) is flushed like the rest.
  ctx.flushSoon();
  // Liveness: ask for a keepalive a few times per timeout (a status update also keeps the server from timing us out
  // while reading is paused), and take a stream silent for the whole timeout for dead. Silence while paused is
  // ours, not the server's: TCP keepalive covers that time.
  const liveness = setInterval(() => {
    if (livenessTick(p, s, timeoutMs)) metrics.livenessTimeouts.inc(labels);
  }, livenessIntervalMs(timeoutMs));
  return () => {
    ctx.flushSoon = undefined;
    clearTimeout(armed);
    clearInterval(liveness);
  };
}
