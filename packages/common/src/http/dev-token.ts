import { createHmac } from 'node:crypto';

/**
 * The development issuer: outside production, when no real issuer is configured, the order service accepts
 * HS256 tokens from this issuer signed with the development key (AUTH_DEV_SECRET, or this well-known default), so
 * `npm start`, `npm run demo`, compose and the tests need no identity provider. Production refuses to start
 * without a real issuer, so neither the key nor this module is ever trusted there.
 */
export const DEV_ISSUER = 'urn:saga:dev-issuer';
export const DEFAULT_AUDIENCE = 'saga-orders';
export const DEFAULT_DEV_SECRET = 'saga-development-key-never-use-in-production';

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/**
 * A token of the development issuer naming `customerId` as its subject. Minted with node:crypto (HS256 is one
 * HMAC), so scripts and tests need no ESM-only library; verification uses a maintained library (jose).
 */
export function mintDevToken(
  customerId: string,
  opts: { secret?: string; audience?: string; ttlSeconds?: number; now?: number } = {},
): string {
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      iss: DEV_ISSUER,
      aud: opts.audience ?? DEFAULT_AUDIENCE,
      sub: customerId,
      iat: now,
      exp: now + (opts.ttlSeconds ?? 3600),
    }),
  );
  const signature = createHmac('sha256', opts.secret ?? process.env.AUTH_DEV_SECRET ?? DEFAULT_DEV_SECRET)
    .update(`${header}.${payload}`)
    .digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** `Authorization` header of a development token for `customerId`. */
export const devAuthHeader = (customerId: string, opts?: Parameters<typeof mintDevToken>[1]) => ({
  authorization: `Bearer ${mintDevToken(customerId, opts)}`,
});
