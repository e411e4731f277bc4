import { createRateLimiter } from '../../src/http/rate-limit';

describe('rate limiter', () => {
  it('allows a burst, then one request per refill interval, per caller', () => {
    let t = 0;
    const limiter = createRateLimiter({ perSecond: 2, burst: 3, now: () => t });
    expect([1, 2, 3].map(() => limiter.take('a'))).toEqual([0, 0, 0]);
    expect(limiter.take('a')).toBeCloseTo(0.5);
    expect(limiter.take('b')).toBe(0);
    t += 500;
    expect(limiter.take('a')).toBe(0);
    expect(limiter.take('a')).toBeGreaterThan(0);
  });

  it('forgets callers whose bucket is full again once it tracks maxKeys', () => {
    let t = 0;
    const limiter = createRateLimiter({ perSecond: 1, burst: 1, maxKeys: 2, now: () => t });
    limiter.take('a');
    limiter.take('b');
    t += 1000;
    limiter.take('c');
    expect(limiter.size()).toBe(1);
  });
});
