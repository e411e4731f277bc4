import { createLsnTracker, formatLsn, parseLsn } from '../../src/lsn';

describe('LSN parsing', () => {
  it('reads both formats as the same 64-bit number', () => {
    expect(parseLsn('0/1569FA8')).toBe(parseLsn('00000000/01569FA8'));
    expect(parseLsn('1/0')).toBe(1n << 32n);
  });
  it('compares numerically where strings would not', () => {
    expect(parseLsn('0/9') < parseLsn('0/10')).toBe(true);
    expect('0/9' < '0/10').toBe(false);
  });
  it('round-trips through formatLsn', () => {
    expect(formatLsn(parseLsn('00000001/01569FA8'))).toBe('1/1569FA8');
  });
  it('rejects what is not an LSN', () => {
    expect(() => parseLsn('x/1')).toThrow('not an LSN');
  });
});

describe('LSN tracker', () => {
  it('acknowledges a commit only after every message of it was confirmed', () => {
    const t = createLsnTracker();
    const a = t.begin();
    t.published(a);
    t.published(a);
    t.commit(a, 100n);
    expect(t.ackable()).toBeUndefined();
    t.confirmed(a);
    expect(t.ackable()).toBeUndefined();
    t.confirmed(a);
    expect(t.ackable()).toBe(100n);
    expect(t.idle()).toBe(true);
  });

  it('never acknowledges past an earlier transaction still waiting for a confirm', () => {
    const t = createLsnTracker();
    const a = t.begin();
    t.published(a);
    t.commit(a, 100n);
    const b = t.begin();
    t.published(b);
    t.commit(b, 200n);
    t.confirmed(b);
    expect(t.ackable()).toBeUndefined();
    t.confirmed(a);
    expect(t.ackable()).toBe(200n);
  });

  it('does not acknowledge an open transaction whose messages are all confirmed', () => {
    const t = createLsnTracker();
    const a = t.begin();
    t.published(a);
    t.confirmed(a);
    expect(t.ackable()).toBeUndefined();
    expect(t.idle()).toBe(false);
    t.commit(a, 50n);
    expect(t.ackable()).toBe(50n);
  });

  it('counts messages in flight across transactions', () => {
    const t = createLsnTracker();
    const a = t.begin();
    t.published(a);
    t.commit(a, 1n);
    const b = t.begin();
    t.published(b);
    t.published(b);
    expect(t.inFlight()).toBe(3);
    t.confirmed(a);
    expect(t.inFlight()).toBe(2);
  });

  it('keeps memory bounded over many settled transactions', () => {
    const t = createLsnTracker();
    for (let i = 1; i <= 10_000; i++) {
      const e = t.begin();
      t.published(e);
      t.commit(e, BigInt(i));
      t.confirmed(e);
    }
    expect(t.ackable()).toBe(10_000n);
    expect(t.idle()).toBe(true);
  });
});
