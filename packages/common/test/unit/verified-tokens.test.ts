import { verifiedTokens } from '../../src/http/verified-tokens';

describe('verified tokens', () => {
  const make = () => verifiedTokens<string>({ maxEntries: 3, maxAgeMs: 60_000 });

  it('answers a token verified before, until its own expiry', () => {
    const t = make();
    t.put('tok', 'c1', 10_000, 0);
    expect(t.get('tok', 9_999)).toBe('c1');
    expect(t.get('tok', 10_000)).toBeUndefined();
    expect(t.size).toBe(0);
  });

  it('trusts a long-lived token no longer than the maximum age', () => {
    const t = make();
    t.put('tok', 'c1', 3_600_000, 0);
    expect(t.get('tok', 59_999)).toBe('c1');
    expect(t.get('tok', 60_000)).toBeUndefined();
  });

  it('never answers a token that differs in one character', () => {
    const t = make();
    t.put('header.payload.sig', 'c1', 10_000, 0);
    expect(t.get('header.payload.siG', 1)).toBeUndefined();
  });

  it('keeps no token that has already expired', () => {
    const t = make();
    t.put('tok', 'c1', 5, 10);
    expect(t.size).toBe(0);
    expect(t.get('tok', 10)).toBeUndefined();
  });

  it('keeps at most its bound, dropping the oldest', () => {
    const t = make();
    for (const k of ['a', 'b', 'c', 'd']) t.put(k, k, 10_000, 0);
    expect(t.size).toBe(3);
    expect(t.get('a', 1)).toBeUndefined();
    expect(t.get('d', 1)).toBe('d');
  });
});
