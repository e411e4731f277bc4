/**
 * A bounded memory of bearer tokens whose signature and claims were verified, so a caller who sends the same token
 * again (every request of a session does) is not verified from scratch each time. Verifying costs a WebCrypto job
 * per request: in the order service at 200 orders/s it was a fifth of the process's CPU.
 *
 * An entry is the exact token string (its signature included), so only a byte-identical token can hit. It is
 * trusted until the token's own expiry or `maxAgeMs` after it was verified, whichever comes first: `maxAgeMs` bounds
 * how long a key removed from the issuer's JWKS still lets its tokens through. At most `maxEntries` are kept; the
 * oldest go first.
 */
export type VerifiedTokens<T> = {
  get(token: string, nowMs: number): T | undefined;
  put(token: string, value: T, expiresAtMs: number, nowMs: number): void;
  readonly size: number;
};

export function verifiedTokens<T>(opts: { maxEntries: number; maxAgeMs: number }): VerifiedTokens<T> {
  const entries = new Map<string, { value: T; until: number }>();
  return {
    get(token, nowMs) {
      const e = entries.get(token);
      if (!e) return undefined;
      if (nowMs < e.until) return e.value;
      entries.delete(token);
      return undefined;
    },
    put(token, value, expiresAtMs, nowMs) {
      const until = Math.min(expiresAtMs, nowMs + opts.maxAgeMs);
      if (!(until > nowMs)) return;
      entries.delete(token);
      entries.set(token, { value, until });
      while (entries.size > opts.maxEntries) entries.delete(entries.keys().next().value as string);
    },
    get size() {
      return entries.size;
    },
  };
}
