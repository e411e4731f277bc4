/**
 * An HTTP answer other than a caller's mistake in a field (DomainError) or a validation error: refused
 * authentication (401), a forbidden resource (403), a rate limit (429), shed load (503). The error middleware
 * answers it as problem details with its headers (WWW-Authenticate, Retry-After, Location).
 */
export class HttpProblemError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly opts: { type?: string; title?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = 'HttpProblemError';
  }
}

/** 403: the caller may not act for whom the request names. */
export const forbidden = (message: string) =>
  new HttpProblemError(403, message, { type: 'urn:saga:problem:forbidden' });

/** 429 with Retry-After: this caller sent too many requests. */
export const rateLimited = (retryAfterSeconds: number) =>
  new HttpProblemError(429, 'too many requests from this caller, slow down', {
    type: 'urn:saga:problem:rate-limited',
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  });

/** 503 with Retry-After: the request was not accepted, and may be sent again as it is. */
export const unavailable = (message: string, retryAfterSeconds = 1, type?: string) =>
  new HttpProblemError(503, message, {
    ...(type ? { type } : {}),
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  });
