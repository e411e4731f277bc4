import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Router } from 'express';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { BaseEnv, DatabaseUrl } from './config';
import { createConsumer } from '../messaging/consumer';
import type { BatchHandler, InboxRetention } from '../messaging/batch-handler';
import { publisherTrust } from '../messaging/publisher-trust';
import { createHttpApp, finishHttpApp, listen } from '../http/app';
import { createLogger, redactUrl, type Logger } from './logger';
import { createMetricsRegistry, createMetricsRouter, createOpsRouter } from './ops';
import { startOutboxPruner } from '../db/outbox-retention';
import { createPool, poolConfig } from '../db/pg';
import { consumerQueueOf } from '../contracts/service-names';
import { startTracing, stopTracing } from './tracing';
import type { DatabaseOwner } from '../contracts/service-names';

/** Variables every service reads; each service adds its own and its defaults. */
export const ServiceEnv = BaseEnv.extend({
  /** Connections of the pool that serves HTTP requests. */
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** Connections of the consumer's own pool (one batch at a time, plus inbox pruning): HTTP load cannot starve it. */
  DB_CONSUMER_POOL_MAX: z.coerce.number().int().min(1).max(50).default(3),
  /**
   * Client-side deadline of every database round trip (node-postgres query_timeout): a half-open connection fails
   * after this instead of stalling a request or the consumer for ever. Longer than the server's statement_timeout
   * (setup's DB_STATEMENT_TIMEOUT), which normally ends a slow statement first.
   */
  DB_QUERY_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /** TCP keepalive on database connections: the first probe after this much silence. */
  DB_KEEPALIVE_MS: z.coerce.number().int().min(1000).default(10_000),
  /** PostgreSQL's plan_cache_mode for the service's connections: `auto` (PostgreSQL's default) or `force_custom_plan` (see planCacheOptions). */
  DB_PLAN_CACHE_MODE: z.enum(['auto', 'force_custom_plan']).default('auto'),
  CONSUMER_PREFETCH: z.coerce.number().int().min(1).max(1000).default(256),
  CONSUMER_MAX_BATCH: z.coerce.number().int().min(1).max(1000).default(256),
  CONSUMER_BATCH_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(30),
  INBOX_RETENTION_HOURS: z.coerce.number().int().min(1).default(168),
  INBOX_PRUNE_EVERY_MS: z.coerce.number().int().min(10).default(60_000),
  /** Outbox rows are kept this long: the window `npm run relay -- reconcile` can republish after a failover. */
  OUTBOX_RETENTION_HOURS: z.coerce.number().int().min(1).default(24),
  OUTBOX_PRUNE_EVERY_MS: z.coerce.number().int().min(10).default(60_000),
  CONSUMER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  CONSUMER_RETRY_BASE_MS: z.coerce.number().int().min(1).default(500),
  /**
   * Broker users whose events the consumer applies (comma-separated): the relay's, and Debezium's during a swap.
   * Unset: the user of RABBITMQ_URL (one user shared by every component, as in local runs).
   */
  EVENT_PUBLISHERS: z.string().optional(),
  /**
   * Apply events without a `user-id` when they come through the events exchange (Debezium Server sets none).
   * Default: true when EVENT_PUBLISHERS is unset, false when it is set.
   */
  EVENT_UNSIGNED_VIA_EXCHANGE: z.enum(['true', 'false']).optional(),
  HTTP_BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/)
    .default('64kb'),
  /** A request must arrive whole within this (server.requestTimeout); it bounds receiving, so streams are not cut. */
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
  /** Its headers within this (server.headersTimeout): a slow client cannot hold a socket by trickling them. */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).default(10_000),
  /** Open connections beyond this are refused (server.maxConnections). */
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(2000),
});

/** A service's env schema: the shared variables plus PORT and DATABASE_URL with the service's own defaults. */
export function serviceEnv(defaults: { port: number; databaseUrl: string }) {
  return ServiceEnv.extend({
    PORT: z.coerce.number().int().min(0).max(65535).default(defaults.port),
    /** The admin listener: /metrics, probes and the service's administration (never exposed to customers). */
    ADMIN_PORT: z.coerce
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(defaults.port + 100),
    DATABASE_URL: DatabaseUrl.default(defaults.databaseUrl),
  });
}
export type ServiceConfig = z.infer<ReturnType<typeof serviceEnv>>;

export type ServiceContext<S extends Record<string, unknown>, C extends ServiceConfig> = {
  config: C;
  log: Logger;
  registry: Registry;
  /** The pool for HTTP requests; `handler` receives the consumer's own pool here instead. */
  pool: pg.Pool;
  db: NodePgDatabase<S>;
  /** `<service>.events`: the service's queue, and its name in the inbox (derived here, once). */
  consumer: string;
  /** How long the inbox remembers applied messages. */
  inbox: InboxRetention;
};

export type ServiceDefinition<S extends Record<string, unknown>, C extends ServiceConfig> = {
  name: DatabaseOwner;
  config: C;
  schema: S;
  /** The public API, on PORT (a component without one serves only the probes there). */
  routes?: (ctx: ServiceContext<S, C>) => Router;
  /** Administration (reference data, unfiltered lists, an operator UI), served on ADMIN_PORT only. */
  adminRoutes?: (ctx: ServiceContext<S, C>) => Router;
  /** The service's part of the saga: what it does with each batch of the events it consumes. */
  handler: (ctx: ServiceContext<S, C>) => BatchHandler;
  /** Extra long-running parts (e.g. a LISTEN connection), started after HTTP and stopped before the pool. */
  extras?: (ctx: ServiceContext<S, C>) => Promise<{ stop: () => Promise<void> }>;
};

export type RunningService = { port: number; adminPort: number; stop: () => Promise<void>; log: Logger };

/**
 * The one composition of a service: pool, HTTP app (routes + ops endpoints), consumer of its own queue.
 * Stopping closes HTTP first (no new work), then the consumer (waits for in-flight messages), then the pool.
 */
export async function runService<S extends Record<string, unknown>, C extends ServiceConfig>(
  def: ServiceDefinition<S, C>,
): Promise<RunningService> {
  const { config } = def;
  const log = createLogger(def.name, config.LOG_LEVEL, config.LOG_FLUSH_MS);
  // Before the HTTP server exists: its requests are traced from the first one (only when OTEL_* configure an exporter).
  if (startTracing(def.name, { http: true })) log.info('tracing on: spans exported as OTEL_* configures');
  const registry = createMetricsRegistry(def.name);
  const { ctx, consumerCtx } = serviceContexts(def, log, registry);
  const consumer = serviceConsumer(config, consumerCtx.consumer, def.handler(consumerCtx), log, registry);

  let shuttingDown = false;
  const { http, admin, port, adminPort } = await startHttp(def, ctx, {
    ready: async () => {
      const database = await ctx.pool.query('SELECT 1').then(
        () => true,
        () => false,
      );
      return { database, broker: consumer.isReady() };
    },
    shuttingDown: () => shuttingDown,
  });
  const extras = def.extras ? await def.extras(ctx) : undefined;
  consumer.start();
  const outboxPruner = startPruner(def, ctx);
  log.info({ port, adminPort, database: redactUrl(config.DATABASE_URL), queue: ctx.consumer }, 'service started');

  return {
    port,
    adminPort,
    log,
    async stop() {
      shuttingDown = true;
      await extras?.stop();
      await http.close();
      await admin.close();
      await consumer.stop();
      await outboxPruner?.stop();
      await ctx.pool.end();
      await consumerCtx.pool.end();
      await stopTracing();
    },
  };
}

/** The context of HTTP routes and that of the batch handler: each with its own pool, so neither starves the other. */
function serviceContexts<S extends Record<string, unknown>, C extends ServiceConfig>(
  def: ServiceDefinition<S, C>,
  log: Logger,
  registry: Registry,
) {
  const { config } = def;
  const poolOptions = (max: number, role: string) =>
    poolConfig({
      max,
      applicationName: `${def.name} ${role}`,
      planCacheMode: config.DB_PLAN_CACHE_MODE,
      queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
      keepAliveMs: config.DB_KEEPALIVE_MS,
    });
  const pool = createPool(config.DATABASE_URL, log, poolOptions(config.DB_POOL_MAX, 'http'), registry);
  const consumerPool = createPool(
    config.DATABASE_URL,
    log,
    poolOptions(config.DB_CONSUMER_POOL_MAX, 'consumer'),
    registry,
  );
  const db = drizzle(pool, { schema: def.schema });
  const consumerName = consumerQueueOf(def.name);
  const inbox = { retentionHours: config.INBOX_RETENTION_HOURS, pruneEveryMs: config.INBOX_PRUNE_EVERY_MS };
  const ctx: ServiceContext<S, C> = { config, log, registry, pool, db, consumer: consumerName, inbox };
  const consumerCtx: ServiceContext<S, C> = {
    ...ctx,
    pool: consumerPool,
    db: drizzle(consumerPool, { schema: def.schema }),
  };
  return { ctx, consumerCtx };
}

/** The consumer of the service's own queue, configured from the service's env. */
function serviceConsumer(config: ServiceConfig, queue: string, handler: BatchHandler, log: Logger, registry: Registry) {
  return createConsumer({
    url: config.RABBITMQ_URL,
    exchange: config.EVENTS_EXCHANGE,
    queue,
    handler,
    log,
    registry,
    prefetch: config.CONSUMER_PREFETCH,
    maxBatch: config.CONSUMER_MAX_BATCH,
    batchIntervalMs: config.CONSUMER_BATCH_INTERVAL_MS,
    maxAttempts: config.CONSUMER_MAX_ATTEMPTS,
    retryBaseMs: config.CONSUMER_RETRY_BASE_MS,
    trust: publisherTrust({
      url: config.RABBITMQ_URL,
      exchange: config.EVENTS_EXCHANGE,
      publishers: config.EVENT_PUBLISHERS,
      unsignedViaExchange:
        config.EVENT_UNSIGNED_VIA_EXCHANGE === undefined ? undefined : config.EVENT_UNSIGNED_VIA_EXCHANGE === 'true',
    }),
  });
}

/**
 * The public listener (routes, probes) and the admin listener: its own port, so that network policy (k8s) or a
 * loopback binding (compose) keeps it from customers. Metrics and administration only there; probes on both.
 */
async function startHttp<S extends Record<string, unknown>, C extends ServiceConfig>(
  def: ServiceDefinition<S, C>,
  ctx: ServiceContext<S, C>,
  probes: { ready: () => Promise<Record<string, boolean>>; shuttingDown: () => boolean },
) {
  const { config, log, registry } = ctx;
  const app = createHttpApp(log, registry, config.HTTP_BODY_LIMIT);
  app.use(createOpsRouter(probes.ready, probes.shuttingDown));
  if (def.routes) app.use(def.routes(ctx));
  finishHttpApp(app);
  const limits = {
    requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
    headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
    maxConnections: config.HTTP_MAX_CONNECTIONS,
  };
  const http = await listen(app, config.PORT, '0.0.0.0', limits);
  const port = (http.server.address() as { port: number }).port;
  const adminApp = createHttpApp(log, registry, config.HTTP_BODY_LIMIT);
  adminApp.use(createOpsRouter(async () => ({}), probes.shuttingDown));
  adminApp.use(createMetricsRouter(registry));
  if (def.adminRoutes) adminApp.use(def.adminRoutes(ctx));
  finishHttpApp(adminApp);
  const admin = await listen(adminApp, config.ADMIN_PORT, '0.0.0.0', limits);
  const adminPort = (admin.server.address() as { port: number }).port;
  return { http, admin, port, adminPort };
}

/** The outbox pruner; none for a component without an outbox table in its schema (the monitor publishes nothing). */
function startPruner<S extends Record<string, unknown>, C extends ServiceConfig>(
  def: ServiceDefinition<S, C>,
  ctx: ServiceContext<S, C>,
) {
  const { config, log } = ctx;
  if (!('outbox' in def.schema)) return undefined;
  const pruner = startOutboxPruner(ctx.pool, log, {
    retentionHours: config.OUTBOX_RETENTION_HOURS,
    everyMs: config.OUTBOX_PRUNE_EVERY_MS,
  });
  if (config.OUTBOX_RETENTION_HOURS >= config.INBOX_RETENTION_HOURS) {
    // A reconcile republishes up to OUTBOX_RETENTION_HOURS of events; a consumer that forgot an id applies it again.
    log.warn(
      { outboxRetentionHours: config.OUTBOX_RETENTION_HOURS, inboxRetentionHours: config.INBOX_RETENTION_HOURS },
      'OUTBOX_RETENTION_HOURS should be shorter than INBOX_RETENTION_HOURS',
    );
  }
  return pruner;
}

export { createLogger };
