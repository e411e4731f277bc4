import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { Histogram, type Registry } from 'prom-client';
import { ZodError, type z } from 'zod';
import { DomainError } from './errors';
import type { Logger } from './logger';
import { isConnectionError, isPgError } from './pg';

declare module 'express-serve-static-core' {
  interface Request {
    log: Logger;
    /** Id of this HTTP request (x-request-id); the saga's correlation id is the order id. */
    requestId: string;
  }
}

/** The 400 body of the HTTP contract: `{"error", "details": [{"path", "message"}]}`. */
export function validationErrorBody(err: ZodError, where = 'body') {
  return {
    error: `invalid request ${where}`,
    details: err.issues.map((i) => ({ path: [where, ...i.path].join('.'), message: i.message })),
  };
}

/** Parse `value` with `schema`, throwing a ZodError labelled with where it came from (body, params, query). */
export class RequestValidationError extends Error {
  constructor(readonly where: string, readonly zodError: ZodError) {
    super(`invalid request ${where}`);
    this.name = 'RequestValidationError';
  }
}
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'params' | 'query' | 'headers'): z.infer<S> {
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
  app.use(helmet());
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const requestContext: RequestHandler = (req, res, next) => {
    const header = req.header('x-request-id');
    req.requestId = header && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
    req.log = log.child({ requestId: req.requestId });
    res.setHeader('x-request-id', req.requestId);
    const end = duration.startTimer();
    res.on('finish', () => {
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
  app.use(requestContext);
  const json = express.json({ limit: bodyLimit, strict: true, type: 'application/json' });
  app.use((req, res, next) => {
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && ['POST', 'PUT', 'PATCH'].includes(req.method) && !req.is('application/json')) {
      res.status(415).json({ error: 'unsupported media type', details: [{ path: 'headers.content-type', message: 'must be application/json' }] });
      return;
    }
    json(req, res, next);
  });
  return app;
}

/**
 * The one place errors become HTTP answers. Never a stack trace or SQL text in a body: unexpected errors are
 * logged with their stack and answered with a bare 500.
 */
export function finishHttpApp(app: Express): void {
  app.use((req, res) => {
    res.status(404).json({ error: 'not found', details: [{ path: 'url', message: `no route for ${req.method} ${req.path}` }] });
  });
  const errorMiddleware: ErrorRequestHandler = (err, req, res, _next) => {
    const log = req.log;
    if (err instanceof RequestValidationError) return void res.status(400).json(validationErrorBody(err.zodError, err.where));
    if (err instanceof ZodError) return void res.status(400).json(validationErrorBody(err));
    if (err instanceof DomainError) {
      return void res.status(err.status).json({ error: err.message, code: err.code, details: [] });
    }
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') return void res.status(413).json({ error: 'request body too large', details: [{ path: 'body', message: 'too large' }] });
    if (type === 'entity.parse.failed') return void res.status(400).json({ error: 'invalid JSON', details: [{ path: 'body', message: 'body is not valid JSON' }] });
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') return void res.status(415).json({ error: 'unsupported encoding', details: [] });
    if (typeof (err as { status?: unknown }).status === 'number' && (err as { status: number }).status < 500) {
      const status = (err as { status: number }).status;
      return void res.status(status).json({ error: 'bad request', details: [] });
    }
    if (isConnectionError(err) || isPgError(err, '57P01', '57P02', '57P03', '53300')) {
      log?.warn({ err }, 'dependency unavailable');
      res.setHeader('Retry-After', '1');
      return void res.status(503).json({ error: 'service unavailable, try again', details: [] });
    }
    log?.error({ err }, 'unhandled error');
    res.status(500).json({ error: 'internal error', details: [] });
  };
  app.use(errorMiddleware);
}

export { listen } from './ops';
