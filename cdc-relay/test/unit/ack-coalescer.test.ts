import { ackCoalescer, type AckClock } from '../../src/ack-coalescer';

/** A clock whose time and timers move only when the test says. */
function fakeClock() {
  let t = 0;
  let timers: { at: number; fn: () => void; live: boolean }[] = [];
  const clock: AckClock = {
    now: () => t,
    setTimer: (fn, ms) => {
      const timer = { at: t + ms, fn, live: true };
      timers.push(timer);
      return { cancel: () => void (timer.live = false) };
    },
  };
  const advance = (ms: number) => {
    t += ms;
    const due = timers.filter((x) => x.live && x.at <= t);
    timers = timers.filter((x) => x.live && x.at > t);
    for (const x of due) x.fn();
  };
  return { clock, advance, live: () => timers.filter((x) => x.live).length };
}

describe('acknowledgements to the server, at most one per interval', () => {
  const setup = () => {
    const sent: [bigint, boolean][] = [];
    const c = fakeClock();
    const acks = ackCoalescer((lsn, ping) => sent.push([lsn, ping]), 20, c.clock);
    return { sent, acks, ...c };
  };

  it('sends the first acknowledgement after a quiet spell at once', () => {
    const { sent, acks } = setup();
    acks.acknowledge(100n);
    expect(sent).toEqual([[100n, false]]);
  });

  it('merges acknowledgements within an interval into one of the highest position, sent when it ends', () => {
    const { sent, acks, advance } = setup();
    acks.acknowledge(100n);
    advance(5);
    acks.acknowledge(200n);
    acks.acknowledge(300n);
    expect(sent).toEqual([[100n, false]]);
    advance(14);
    expect(sent).toHaveLength(1);
    advance(1);
    expect(sent).toEqual([
      [100n, false],
      [300n, false],
    ]);
  });

  it('never sends a lower position than one already handed in', () => {
    const { sent, acks, advance } = setup();
    acks.acknowledge(100n);
    acks.acknowledge(300n);
    acks.acknowledge(200n);
    advance(20);
    expect(sent.map(([l]) => l)).toEqual([100n, 300n]);
  });

  it('answers a keepalive request at once, with what is pending', () => {
    const { sent, acks, live } = setup();
    acks.acknowledge(100n);
    acks.acknowledge(300n);
    acks.acknowledge(250n, true);
    expect(sent).toEqual([
      [100n, false],
      [300n, true],
    ]);
    expect(live()).toBe(0);
  });

  it('sends what is pending on flush, and nothing after a stop', () => {
    const { sent, acks, advance } = setup();
    acks.acknowledge(100n);
    acks.acknowledge(200n);
    acks.flush();
    expect(sent.map(([l]) => l)).toEqual([100n, 200n]);
    advance(25);
    acks.acknowledge(300n);
    acks.acknowledge(400n);
    acks.stop();
    advance(100);
    acks.flush();
    acks.acknowledge(500n);
    expect(sent.map(([l]) => l)).toEqual([100n, 200n, 300n]);
  });
});
