import { randomUUID } from 'node:crypto';
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import helmet from 'helmet';
import { Histogram, type Registry } from 'prom-client';
import { ZodError, type z } from 'zod';
import { DomainError } from '../messaging/errors';
import type { Logger } from '../runtime/logger';
import { isConnectionError, isPgError, pgCode } from '../db/pg';
import { PROBLEM_TYPE, problem, sendProblem, type ProblemFieldError } from './problem';

export { sendProblem } from './problem';
import { requestSpan } from '../runtime/tracing';
import { spanIdOf, traceIdOf } from '../runtime/trace-context';
import { HttpProblemError } from './http-error';

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const REQUEST_LOG = Symbol('request log');
const NAME_SPAN = Symbol('name the request span');
const RESPONSE_STARTED = Symbol('response started');

declare module 'express-serve-static-core' {
  interface Request {
    [REQUEST_LOG]?: Logger;
    [NAME_SPAN]?: (method: string, route: string) => void;
    log: Logger;
    /** Id of this HTTP request (x-request-id); the saga's correlation id is the order id. */
    requestId: string;
    /** W3C context of the span this request runs in (continues the caller's `traceparent`); events it causes carry it. */
    traceparent: string;
    /** Who called, from a verified bearer token; set by `authenticate` (http/auth) where an API requires one. */
    caller?: { customerId: string };
  }
  interface Response {
    [RESPONSE_STARTED]: number;
  }
}

/** The field list of a 400 problem: each zod issue as `{path: "<where>.<field path>", message}`. */
export function fieldErrors(err: ZodError, where = 'body'): ProblemFieldError[] {
  return err.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message }));
}

/** Parse `value` with `schema`, throwing a ZodError labelled with where it came from (body, params, query). */
export class RequestValidationError extends Error {
  constructor(
    readonly where: string,
    readonly zodError: ZodError,
  ) {
    super(`invalid request ${where}`);
    this.name = 'RequestValidationError';
  }
}
export function parseRequest<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'body' | 'params' | 'query' | 'headers',
): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new RequestValidationError(where, result.error);
  return result.data;
}

/**
 * An express app with the hardening every service shares: no x-powered-by, security headers, JSON bodies only
 * (other content types 415), a body size limit (413), a request-scoped logger with the request id.
 */
export function createHttpApp(log: Logger, registry: Registry, bodyLimit = '64kb'): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders());
  // One histogram per registry: a service's public and admin listeners share it.
  const duration =
    (registry.getSingleMetric('http_request_duration_seconds') as Histogram<'method' | 'route' | 'status'>) ??
    new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
  // The request's logger is made on first use (most requests log nothing, and a pino child per request was a
  // measurable share of a POST's CPU). Its accessor is defined once, on this app's request prototype, and every
  // response shares one 'finish' listener: an accessor defined on each request object, a timer closure and a
  // listener closure per request made the POST route's server CPU about 70 µs (a sixth) higher.
  // Nothing here mounts another express app, which would swap the request prototype.
  Object.defineProperty(app.request, 'log', {
    configurable: true,
    get(this: Request): Logger {
      return (this[REQUEST_LOG] ??= log.child({
        requestId: this.requestId,
        trace_id: traceIdOf(this.traceparent),
        span_id: spanIdOf(this.traceparent),
      }));
    },
    set(this: Request, l: Logger) {
      this[REQUEST_LOG] = l;
    },
  });
  // One listener function for every response: the duration by route and status, and the span's name.
  function onFinish(this: Response) {
    const req = this.req;
    const route = (req.route?.path as string | undefined) ?? 'unmatched';
    duration.observe(
      { method: req.method, route, status: String(this.statusCode) },
      (performance.now() - this[RESPONSE_STARTED]) / 1000,
    );
    if (req.route) req[NAME_SPAN]?.(req.method, route);
  }
  const requestContext: RequestHandler = (req, res, next) => {
    const header = req.headers['x-request-id'];
    req.requestId = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    const span = requestSpan(req.headers.traceparent);
    req.traceparent = span.traceparent;
    if (span.name) req[NAME_SPAN] = span.name;
    res.setHeader('x-request-id', req.requestId);
    res[RESPONSE_STARTED] = performance.now();
    res.on('finish', onFinish);
    next();
  };
  app.use(requestContext);
  const json = express.json({ limit: bodyLimit, strict: true, type: 'application/json' });
  app.use((req, res, next) => {
    const hasBody =
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ||
      req.headers['transfer-encoding'] !== undefined;
    if (hasBody && ['POST', 'PUT', 'PATCH'].includes(req.method) && !req.is('application/json')) {
      sendProblem(
        res,
        problem(415, 'the request body must be application/json', at(req), {
          errors: [{ path: 'headers.content-type', message: 'must be application/json' }],
        }),
      );
      return;
    }
    json(req, res, next);
  });
  return app;
}

/**
 * Helmet's security headers, worked out once and set on every response. Helmet runs a dozen middlewares per request
 * whose answer never depends on the request (no nonces here), so they run once at startup against a recording
 * response; the headers are the same as `app.use(helmet(...))` would set, for a fraction of the cost per request.
 */
export function securityHeaders(): RequestHandler {
  const headers = new Map<string, string | number | readonly string[]>();
  const removed = new Set<string>();
  const recorder = {
    setHeader: (name: string, value: string | number | readonly string[]) => {
      headers.set(name, value);
      removed.delete(name.toLowerCase());
    },
    removeHeader: (name: string) => {
      headers.delete(name);
      removed.add(name.toLowerCase());
    },
  };
  // No upgrade-insecure-requests: a page served over plain HTTP inside a cluster (the monitor's) would have its own
  // script and API calls rewritten to https and fail.
  const middleware = helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } });
  let done = false;
  middleware({} as Request, recorder as unknown as Response, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    done = true;
  });
  if (!done) throw new Error('helmet did not finish synchronously');
  const entries = [...headers];
  return (_req, res, next) => {
    for (const name of removed) res.removeHeader(name);
    for (const [name, value] of entries) res.setHeader(name, value);
    next();
  };
}

/**
 * The one place errors become HTTP answers. Never a stack trace or SQL text in a body: unexpected errors are
 * logged with their stack and answered with a bare 500.
 */
export function finishHttpApp(app: Express): void {
  app.use((req, res) => {
    sendProblem(
      res,
      problem(404, `no route for ${req.method} ${req.path}`, at(req), {
        errors: [{ path: 'url', message: 'no such route' }],
      }),
    );
  });
  const invalid = (req: Request, errors: ProblemFieldError[], detail = 'the request has invalid fields') =>
    problem(400, detail, at(req), { type: PROBLEM_TYPE.validation, title: 'Invalid request', errors });
  const errorMiddleware: ErrorRequestHandler = (err, req, res, _next) => {
    // The request's logger only where something is logged: made on first use (see requestContext).
    const log = (): Logger | undefined => req.log;
    if (err instanceof RequestValidationError)
      return sendProblem(res, invalid(req, fieldErrors(err.zodError, err.where), `invalid request ${err.where}`));
    if (err instanceof ZodError) return sendProblem(res, invalid(req, fieldErrors(err)));
    if (err instanceof HttpProblemError) {
      for (const [name, value] of Object.entries(err.opts.headers ?? {})) res.setHeader(name, value);
      return sendProblem(
        res,
        problem(err.status, err.message, at(req), { type: err.opts.type, title: err.opts.title }),
      );
    }
    if (err instanceof DomainError) {
      const type =
        err.status === 404 ? PROBLEM_TYPE.notFound : err.status === 409 ? PROBLEM_TYPE.conflict : PROBLEM_TYPE.blank;
      return sendProblem(res, problem(err.status, err.message, at(req), { type }));
    }
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large')
      return sendProblem(
        res,
        problem(413, 'the request body is over the size limit', at(req), {
          errors: [{ path: 'body', message: 'too large' }],
        }),
      );
    if (type === 'entity.parse.failed')
      return sendProblem(
        res,
        invalid(req, [{ path: 'body', message: 'body is not valid JSON' }], 'the body is not valid JSON'),
      );
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
      return sendProblem(
        res,
        problem(415, 'unsupported content encoding or charset', at(req), {
          errors: [{ path: 'headers.content-type', message: 'unsupported encoding or charset' }],
        }),
      );
    }
    if (typeof (err as { status?: unknown }).status === 'number' && (err as { status: number }).status < 500) {
      // Express refuses a path that is not percent-encoded UTF-8 (a lone surrogate's bytes, say) with a URIError.
      const where = err instanceof URIError ? 'url' : 'request';
      return sendProblem(
        res,
        problem((err as { status: number }).status, 'the request could not be read', at(req), {
          errors: [{ path: where, message: where === 'url' ? 'not percent-encoded UTF-8' : 'could not be read' }],
        }),
      );
    }
    // Data exceptions (class 22: a NUL or a malformed character in text, a number out of range) are the request's
    // fault whatever let it through validation: the text schema should have refused it first.
    if (pgCode(err)?.startsWith('22')) {
      log()?.warn({ err }, 'data exception from the database: the request schema let bad input through');
      return sendProblem(res, invalid(req, [{ path: 'body', message: 'a value the database cannot store' }]));
    }
    if (isConnectionError(err) || isPgError(err, '57P01', '57P02', '57P03', '53300')) {
      log()?.warn({ err }, 'dependency unavailable');
      res.setHeader('Retry-After', '1');
      return sendProblem(
        res,
        problem(503, 'a dependency is unavailable, try again', at(req), {
          type: PROBLEM_TYPE.unavailable,
          title: 'Service Unavailable',
        }),
      );
    }
    log()?.error({ err }, 'unhandled error');
    sendProblem(res, problem(500, 'internal error', at(req)));
  };
  app.use(errorMiddleware);
}

/** Where a problem occurred: the request's path (never its query, which may carry data) and its id. */
function at(req: Request): { instance: string; requestId: string } {
  return { instance: req.path, requestId: req.requestId ?? '' };
}

export { listen } from '../runtime/ops';
