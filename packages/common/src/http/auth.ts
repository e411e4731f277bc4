import { webcrypto } from 'node:crypto';
import type { RequestHandler } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { Identifier } from '../contracts/text';
import { authConfigProblem, type AuthConfig } from './auth-config';
import { DEFAULT_DEV_SECRET, DEV_ISSUER } from './dev-token';
import { HttpProblemError } from './http-error';
import { PROBLEM_TYPE } from './problem';
import { verifiedTokens } from './verified-tokens';

export type Verifier = { verify: (token: string) => Promise<{ customerId: string }>; development: boolean };

const Subject = Identifier(64);
/** How many verified tokens a replica remembers, and for how long at most (see verified-tokens.ts). */
const REMEMBERED_TOKENS = 10_000;
const REMEMBER_MS = 60_000;

/** Verifies bearer JWTs: signature, issuer, audience, expiry (jose), and a subject that is a valid customer id. */
export function createVerifier(c: AuthConfig): Verifier {
  const problem = authConfigProblem(c);
  if (problem) throw new Error(problem);
  const development = !c.AUTH_ISSUER;
  const issuer = c.AUTH_ISSUER ?? DEV_ISSUER;
  // The development secret is imported once: handed to jose as bytes, it was imported again for every request.
  const key: Promise<webcrypto.CryptoKey> | JWTVerifyGetKey = development
    ? webcrypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(c.AUTH_DEV_SECRET ?? DEFAULT_DEV_SECRET),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['verify'],
      )
    : createRemoteJWKSet(new URL(c.AUTH_JWKS_URL!));
  const algorithms = development ? ['HS256'] : ['RS256', 'PS256', 'ES256', 'EdDSA'];
  const remembered = verifiedTokens<{ customerId: string }>({ maxEntries: REMEMBERED_TOKENS, maxAgeMs: REMEMBER_MS });
  return {
    development,
    async verify(token) {
      const known = remembered.get(token, Date.now());
      if (known) return known;
      const { payload } = await jwtVerify(token, typeof key === 'function' ? key : await key, {
        issuer,
        audience: c.AUTH_AUDIENCE,
        algorithms,
        requiredClaims: ['sub', 'exp'],
        clockTolerance: 30,
      });
      const sub = Subject.safeParse(payload.sub);
      if (!sub.success) throw new Error('the token subject is not a customer id');
      const caller = { customerId: sub.data };
      // Trusted until `exp` (without the clock tolerance jose allowed): a remembered token never outlives itself.
      remembered.put(token, caller, payload.exp! * 1000, Date.now());
      return caller;
    },
  };
}

const unauthorized = (error: 'invalid_request' | 'invalid_token', message: string) =>
  new HttpProblemError(401, message, {
    type: PROBLEM_TYPE.unauthorized,
    headers: { 'WWW-Authenticate': `Bearer realm="saga", error="${error}"` },
  });

/** Middleware: a valid `Authorization: Bearer <jwt>` or 401; the caller goes to `req.caller`. */
export function authenticate(verifier: Verifier): RequestHandler {
  return (req, _res, next) => {
    const header = req.headers.authorization;
    const match = header ? /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header) : null;
    if (!match) return next(unauthorized('invalid_request', 'a bearer token is required (Authorization: Bearer …)'));
    verifier.verify(match[1]!).then(
      (caller) => {
        req.caller = caller;
        next();
      },
      () => next(unauthorized('invalid_token', 'the bearer token is not valid')),
    );
  };
}
