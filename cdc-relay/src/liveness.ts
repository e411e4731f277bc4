/**
 * Liveness of the replication connection, one tick at a time (the session runs it a few times per timeout). Pure
 * over two ports, so each rule is tested with fakes:
 * - every tick sends a status update with the acknowledged position, also while reading is paused for backpressure
 *   (the server's wal_sender_timeout counts from our last status update, not from what we read);
 * - while reading, the update asks for a keepalive (`ping`), and a stream silent for longer than the timeout is
 *   taken for dead (half-open: no data, no keepalive): the session fails and reconnects;
 * - silence while paused is ours, not the server's: it never counts (TCP keepalive covers that time);
 * - after a failure nothing is sent.
 */
import { SessionError } from './pipe';

export type LivenessPipe = {
  failed: () => unknown;
  acked: () => bigint;
  paused: () => boolean;
  fail: (err: Error) => void;
};
export type LivenessStream = { acknowledge: (lsn: bigint, ping?: boolean) => void; silentForMs: () => number };

export class LivenessTimeoutError extends SessionError {
  override name = 'LivenessTimeoutError';
}

/** One liveness tick; answers true when it failed the session for silence. */
export function livenessTick(p: LivenessPipe, s: LivenessStream, timeoutMs: number): boolean {
  if (p.failed()) return false;
  const paused = p.paused();
  s.acknowledge(p.acked(), !paused);
  const silent = s.silentForMs();
  if (paused || silent <= timeoutMs) return false;
  p.fail(new LivenessTimeoutError(`replication connection silent for ${silent} ms (timeout ${timeoutMs} ms)`));
  return true;
}

/** How often to tick: a few times per timeout, so a keepalive asked for has time to come back. */
export const livenessIntervalMs = (timeoutMs: number) => Math.max(50, Math.floor(timeoutMs / 4));
