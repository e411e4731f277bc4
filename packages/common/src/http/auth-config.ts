import { z } from 'zod';
import { DEFAULT_AUDIENCE } from './dev-token';

/** The environment of an authenticated API. */
export const AuthEnv = z.object({
  NODE_ENV: z.string().optional(),
  /** The identity provider's issuer (`iss`); with AUTH_JWKS_URL. Unset: the development issuer (not in production). */
  AUTH_ISSUER: z.string().url().optional(),
  /** Where the issuer publishes its signing keys (JWKS); jose fetches and caches them, refetching on an unknown kid. */
  AUTH_JWKS_URL: z.string().url().optional(),
  AUTH_AUDIENCE: z.string().min(1).default(DEFAULT_AUDIENCE),
  /** The development issuer's HS256 key (at least 32 characters); a well-known default when unset. */
  AUTH_DEV_SECRET: z.string().min(32).optional(),
});
export type AuthConfig = z.infer<typeof AuthEnv>;

/** Refinement for a config schema that includes AuthEnv: production needs a real issuer and its keys. */
export function authConfigProblem(c: AuthConfig): string | undefined {
  if ((c.AUTH_ISSUER === undefined) !== (c.AUTH_JWKS_URL === undefined))
    return 'AUTH_ISSUER and AUTH_JWKS_URL go together';
  if (c.NODE_ENV === 'production' && !c.AUTH_ISSUER)
    return 'NODE_ENV=production needs AUTH_ISSUER and AUTH_JWKS_URL: the development issuer is not trusted there';
  return undefined;
}
