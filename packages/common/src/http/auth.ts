import type { RequestHandler } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { Identifier } from '../contracts/text';
import { authConfigProblem, type AuthConfig } from './auth-config';
import { DEFAULT_DEV_SECRET, DEV_ISSUER } from './dev-token';
import { HttpProblemError } from './http-error';
import { PROBLEM_TYPE } from './problem';

export type Verifier = { verify: (token: string) => Promise<{ customerId: string }>; development: boolean };

const Subject = Identifier(64);

/** Verifies bearer JWTs: signature, issuer, audience, expiry (jose), and a subject that is a valid customer id. */
export function createVerifier(c: AuthConfig): Verifier {
  const problem = authConfigProblem(c);
  if (problem) throw new Error(problem);
  const development = !c.AUTH_ISSUER;
  const issuer = c.AUTH_ISSUER ?? DEV_ISSUER;
  const key: Uint8Array | JWTVerifyGetKey = development
    ? new TextEncoder().encode(c.AUTH_DEV_SECRET ?? DEFAULT_DEV_SECRET)
    : createRemoteJWKSet(new URL(c.AUTH_JWKS_URL!));
  const algorithms = development ? ['HS256'] : ['RS256', 'PS256', 'ES256', 'EdDSA'];
  return {
    development,
    async verify(token) {
      const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
        issuer,
        audience: c.AUTH_AUDIENCE,
        algorithms,
        requiredClaims: ['sub', 'exp'],
        clockTolerance: 30,
      });
      const sub = Subject.safeParse(payload.sub);
      if (!sub.success) throw new Error('the token subject is not a customer id');
      return { customerId: sub.data };
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
