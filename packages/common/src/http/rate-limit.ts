/**
 * A token bucket per key, in process: `burst` requests at once, refilled at `perSecond`. Buckets that are full again
 * are forgotten when the map grows past `maxKeys`, so memory stays bounded by the callers active recently.
 */
export function createRateLimiter(opts: { perSecond: number; burst: number; maxKeys?: number; now?: () => number }) {
  const now = opts.now ?? (() => performance.now());
  const maxKeys = opts.maxKeys ?? 10_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const refill = (b: { tokens: number; at: number }, t: number) => {
    b.tokens = Math.min(opts.burst, b.tokens + ((t - b.at) / 1000) * opts.perSecond);
    b.at = t;
  };
  return {
    /** Take one token for `key`: 0 when allowed, else the seconds until one is available. */
    take(key: string): number {
      const t = now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys)
          for (const [k, other] of buckets) {
            refill(other, t);
            if (other.tokens >= opts.burst) buckets.delete(k);
          }
        buckets.set(key, (b = { tokens: opts.burst, at: t }));
      } else refill(b, t);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return (1 - b.tokens) / opts.perSecond;
    },
    size: () => buckets.size,
  };
}
