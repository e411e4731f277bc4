/** Liveness ticks of the replication connection, with the real pipe, a fake WAL stream and a fake broker. */
import type { Options } from 'amqplib';
import { livenessTick, LivenessTimeoutError } from '../../src/liveness';
import { createRelayPipe, type PublisherPort, type Settled } from '../../src/pipe';
import { begin, commit, insert, pipeFixture } from '../support/wal-fixtures';

function setup(maxInFlight = 2) {
  const settles: ((s: Settled) => void)[] = [];
  const failures: Error[] = [];
  let paused = false;
  const publisher: PublisherPort = {
    publish: (_e: string, _k: string, _c: Buffer, _o: Options.Publish, settle) => void settles.push(settle),
    writable: () => true,
  };
  const pipe = createRelayPipe({
    wal: { pause: () => (paused = true), resume: () => (paused = false), acknowledge: () => undefined },
    publisher,
    ...pipeFixture,
    maxInFlight,
    acked: 500n,
    onFail: (e) => failures.push(e),
  });
  // The WAL stream as the liveness tick sees it: what it was told, and a silence the test sets.
  const updates: { lsn: bigint; ping: boolean }[] = [];
  let silentMs = 0;
  const stream = {
    acknowledge: (lsn: bigint, ping = false) => void updates.push({ lsn, ping }),
    silentForMs: () => silentMs,
  };
  return {
    pipe,
    stream,
    updates,
    failures,
    settles,
    walPaused: () => paused,
    silence: (ms: number) => (silentMs = ms),
  };
}

describe('liveness of the replication connection', () => {
  it('while reading is paused for backpressure, every tick still sends a status update, and silence does not count', () => {
    const f = setup(2);
    // A transaction larger than the in-flight window: reading pauses at the window.
    f.pipe.onMessage(begin());
    f.pipe.onMessage(insert());
    f.pipe.onMessage(insert());
    expect(f.walPaused()).toBe(true);
    expect(f.pipe.paused()).toBe(true);

    f.silence(60_000); // nothing read for far longer than the timeout: ours, not the server's
    for (let i = 0; i < 3; i++) expect(livenessTick(f.pipe, f.stream, 1500)).toBe(false);
    // A status update per tick, at the acknowledged position, without asking for a keepalive we would not read.
    expect(f.updates).toEqual([
      { lsn: 500n, ping: false },
      { lsn: 500n, ping: false },
      { lsn: 500n, ping: false },
    ]);
    expect(f.failures).toEqual([]);

    // Confirms come in: reading resumes, the transaction completes, and ticks ask for keepalives again.
    for (const s of f.settles.splice(0)) s('confirmed');
    expect(f.walPaused()).toBe(false);
    f.pipe.onMessage(insert());
    f.pipe.onMessage(commit(900n));
    for (const s of f.settles.splice(0)) s('confirmed');
    f.pipe.flushAck();
    f.silence(0);
    expect(livenessTick(f.pipe, f.stream, 1500)).toBe(false);
    expect(f.updates.at(-1)).toEqual({ lsn: 900n, ping: true });
  });

  it('while reading, a stream silent for longer than the timeout fails the session; after that nothing is sent', () => {
    const f = setup();
    f.silence(1400);
    expect(livenessTick(f.pipe, f.stream, 1500)).toBe(false);
    f.silence(1600);
    expect(livenessTick(f.pipe, f.stream, 1500)).toBe(true);
    expect(f.failures).toHaveLength(1);
    expect(f.failures[0]).toBeInstanceOf(LivenessTimeoutError);
    expect(f.failures[0]!.message).toMatch(/silent for 1600 ms \(timeout 1500 ms\)/);
    const sent = f.updates.length;
    expect(livenessTick(f.pipe, f.stream, 1500)).toBe(false);
    expect(f.updates).toHaveLength(sent);
    expect(f.failures).toHaveLength(1);
  });
});
