import { createLagClock, lagSeconds } from '../../src/lag';

// Commit times in µs since the epoch, as pgoutput delivers them.
const us = (ms: number) => BigInt(ms) * 1000n;

describe('replication lag in seconds', () => {
  it('is zero on a fresh session with nothing received', () => {
    expect(createLagClock().streamLagSeconds(1_000_000)).toBe(0);
  });

  it('counts from the commit of the oldest transaction received and not acknowledged', () => {
    const clock = createLagClock();
    clock.committed(100n, us(10_000));
    clock.committed(200n, us(12_000));
    expect(clock.streamLagSeconds(15_000)).toBe(5);
    clock.acknowledged(150n);
    expect(clock.streamLagSeconds(15_000)).toBe(3);
  });

  it('grows while nothing is acknowledged (a broker that stopped confirming)', () => {
    const clock = createLagClock();
    clock.committed(100n, us(10_000));
    expect(clock.streamLagSeconds(11_000)).toBe(1);
    expect(clock.streamLagSeconds(70_000)).toBe(60);
  });

  it('is zero once everything received is acknowledged, however old the last commit', () => {
    const clock = createLagClock();
    clock.committed(100n, us(10_000));
    clock.acknowledged(100n);
    expect(clock.streamLagSeconds(999_000)).toBe(0);
  });

  it('remembers the commit time of the last transaction acknowledged', () => {
    const clock = createLagClock();
    expect(clock.ackedCommitUs()).toBeUndefined();
    clock.committed(100n, us(10_000));
    clock.committed(200n, us(12_000));
    clock.acknowledged(150n);
    expect(clock.ackedCommitUs()).toBe(us(10_000));
    clock.acknowledged(200n);
    expect(clock.ackedCommitUs()).toBe(us(12_000));
  });

  it('never reports a negative lag when the server clock is ahead', () => {
    const clock = createLagClock();
    clock.committed(100n, us(20_000));
    expect(clock.streamLagSeconds(19_000)).toBe(0);
  });

  it('keeps its order over many transactions acknowledged in steps', () => {
    const clock = createLagClock();
    for (let i = 1; i <= 5000; i++) clock.committed(BigInt(i * 10), us(i));
    clock.acknowledged(30_000n);
    expect(clock.streamLagSeconds(5_001)).toBeCloseTo((5_001 - 3_001) / 1000, 6);
    clock.acknowledged(50_000n);
    expect(clock.streamLagSeconds(5_001)).toBe(0);
  });

  it('reports the larger of the stream and the server, the server alone when idle', () => {
    expect(lagSeconds(0, null)).toBe(0);
    expect(lagSeconds(0, 0.25)).toBe(0.25);
    expect(lagSeconds(4, 0.25)).toBe(4);
  });
});
