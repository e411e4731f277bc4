/**
 * RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457): every HTTP error of every service is one
 * `application/problem+json` object, so a client in any language reads errors one way. This module imports only
 * zod (and express's types): the OpenAPI generator and the tests read the same schema the error handler writes.
 */
import type { Response } from 'express';
import { z } from 'zod';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Problem types, as URNs: stable identifiers a client can switch on, not pages to fetch. Statuses that need no
 * more than the HTTP status phrase use `about:blank`, as RFC 9457 section 4.2.1 asks.
 */
export const PROBLEM_TYPE = {
  /** A field of the body, path, query or headers is invalid; `errors` names each. */
  validation: 'urn:saga:problem:validation',
  /** The resource named in the path does not exist. */
  notFound: 'urn:saga:problem:not-found',
  /** The request conflicts with the resource's state (e.g. an Idempotency-Key reused with another body). */
  conflict: 'urn:saga:problem:conflict',
  /** A dependency (database) is unreachable, or the service is full; retry after `Retry-After` seconds. */
  unavailable: 'urn:saga:problem:unavailable',
  /**
   * The database went away while the order was written: it may or may not be placed. Not to be retried blindly:
   * `Location` names the order, whose GET answers 404 until it exists.
   */
  outcomeUnknown: 'urn:saga:problem:outcome-unknown',
  /** No valid bearer token (401), or the token's subject may not do this (403). */
  unauthorized: 'urn:saga:problem:unauthorized',
  forbidden: 'urn:saga:problem:forbidden',
  /** Too many requests from this caller; retry after `Retry-After` seconds. */
  rateLimited: 'urn:saga:problem:rate-limited',
  blank: 'about:blank',
} as const;

export const ProblemFieldError = z
  .object({
    path: z
      .string()
      .meta({ description: 'Where: `body.items.0.quantity`, `query.limit`, `params.sku`, `headers.idempotency-key`' }),
    message: z.string(),
  })
  .meta({ description: 'One invalid field' });

/** The body of every error answer. `errors` (an extension member) is empty when no single field is at fault. */
export const Problem = z
  .object({
    type: z.string().meta({
      description:
        'Problem type URI: urn:saga:problem:validation, …:not-found, …:conflict, …:unavailable, or about:blank',
    }),
    title: z
      .string()
      .meta({ description: 'Short summary of the problem type (the HTTP status phrase for about:blank)' }),
    status: z.number().int().min(400).max(599),
    detail: z.string().meta({ description: 'What went wrong with this request, for a human' }),
    instance: z.string().meta({ description: 'The request path this problem occurred on' }),
    errors: z.array(ProblemFieldError),
    requestId: z.string().meta({ description: 'The x-request-id of the request, to find it in the logs' }),
  })
  .meta({ id: 'Problem', title: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' });
export type Problem = z.infer<typeof Problem>;
export type ProblemFieldError = z.infer<typeof ProblemFieldError>;

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** A problem object; `title` defaults to the HTTP status phrase. */
export function problem(
  status: number,
  detail: string,
  where: { instance: string; requestId: string },
  opts: { type?: string; title?: string; errors?: ProblemFieldError[] } = {},
): Problem {
  return {
    type: opts.type ?? PROBLEM_TYPE.blank,
    title: opts.title ?? TITLES[status] ?? 'Error',
    status,
    detail,
    instance: where.instance,
    errors: opts.errors ?? [],
    requestId: where.requestId,
  };
}

/** Answer `p` as `application/problem+json`. */
export function sendProblem(res: Response, p: Problem): void {
  res.status(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
}
