import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import express, { type Express, type Router } from 'express';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { PROBLEM_TYPE, problem, sendProblem } from '../http/problem';

/**
 * The event-loop delay histogram's sampling period. prom-client's default (10 ms) is a timer that wakes every
 * process 100 times a second, busy or not: about 5 ms of CPU per second and process on a 2-core VM, a third of an
 * idle stack's cost. Node records the time between two samples, so `nodejs_eventloop_lag_{min,mean,p50,p90,p99}`
 * read about 0.1 s on an idle process (0.01 s at the default), and a stall shows by how far it pushes a sample past
 * its time: one shorter than the period may not show at all. `nodejs_eventloop_lag_seconds`, measured at each
 * scrape, is unchanged.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** One Prometheus registry per process, with Node's default metrics under the component's label. */
export function createMetricsRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  return registry;
}

export type ReadinessCheck = () => Promise<Record<string, boolean>>;

/**
 * `/healthz` (the process is alive and its event loop turns) and `/readyz` (every dependency answers, else 503 with
 * the failing ones named): the probes, served on every listener.
 */
export function createOpsRouter(readiness: ReadinessCheck, isShuttingDown: () => boolean = () => false): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    let checks: Record<string, boolean>;
    try {
      checks = await readiness();
    } catch {
      checks = { readiness: false };
    }
    if (isShuttingDown()) checks.shuttingDown = false;
    const ok = Object.values(checks).every(Boolean);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks });
  });
  return router;
}

/**
 * `/metrics` (Prometheus text format): only on an operator-only listener (a service's admin listener, the relay's
 * health and metrics port), never where customers connect.
 */
export function createMetricsRouter(registry: Registry): Router {
  const router = express.Router();
  router.get('/metrics', async (req, res) => {
    // `?name=a&name=b`: only those metrics. A probe or a script that follows one counter at a short interval then
    // costs the process about 0.6 ms a request instead of a full scrape's 2-3 ms (every default metric collected).
    const asked = req.query.name;
    const names = asked === undefined ? undefined : [asked].flat();
    const unknown = names?.find((n) => typeof n !== 'string' || registry.getSingleMetric(n) === undefined);
    if (unknown !== undefined) {
      const where = { instance: req.path, requestId: req.get('x-request-id') ?? '' };
      const errors = [{ path: 'query.name', message: `no metric named ${JSON.stringify(unknown)}` }];
      return sendProblem(res, problem(400, 'unknown metric name', where, { type: PROBLEM_TYPE.validation, errors }));
    }
    const text = names
      ? `${(await Promise.all((names as string[]).map((n) => registry.getSingleMetricAsString(n)))).join('\n')}\n`
      : await registry.metrics();
    res.set('Content-Type', registry.contentType);
    res.send(text);
  });
  return router;
}

/**
 * Listen and resolve once bound; `close` stops accepting and waits for in-flight requests. A client that keeps
 * its connection alive cannot hold a close up: from the close on, responses say `Connection: close` (also one in
 * flight whose headers are not written yet, unless its handler sets the header itself) and each connection is
 * closed as soon as its response has gone.
 */
export async function listen(
  app: Express,
  port: number,
  host = '0.0.0.0',
  limits: { requestTimeoutMs?: number; headersTimeoutMs?: number; maxConnections?: number } = {},
): Promise<{ server: Server; close: () => Promise<void> }> {
  const headersTimeout = Math.min(limits.headersTimeoutMs ?? 60_000, limits.requestTimeoutMs ?? 300_000);
  const server = createServer({
    requestTimeout: limits.requestTimeoutMs ?? 300_000,
    // Node requires headersTimeout <= requestTimeout, and checks both only every connectionsCheckingInterval.
    headersTimeout,
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(headersTimeout / 4))),
  });
  let closing = false;
  const inFlight = new Set<ServerResponse>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    if (closing && !res.headersSent) res.shouldKeepAlive = false;
    res.once('close', () => {
      inFlight.delete(res);
      // Once Node has put the connection back to idle (after this event's own handlers), close it.
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
  });
  // After the tracker: a response the app writes at once (a probe, a 404) already knows whether the listener closes.
  server.on('request', app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.keepAliveTimeout = 5000;
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const res of inFlight) if (!res.headersSent) res.shouldKeepAlive = false;
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
