import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { Router } from 'express';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { BaseEnv, DatabaseUrl } from './config';
import { createConsumer, type BatchHandler, type InboxRetention } from '../messaging/consumer';
import { publisherTrust } from '../messaging/publisher-trust';
import { createHttpApp, finishHttpApp, listen } from '../http/app';
import { createLogger, redactUrl, type Logger } from './logger';
import { createMetricsRegistry, createOpsRouter } from './ops';
import { startOutboxPruner } from '../db/outbox-retention';
import { createPool, planCacheOptions } from '../db/pg';
import { consumerQueueOf } from '../contracts/service-names';
import { startTracing, stopTracing } from './tracing';
import type { DatabaseOwner } from '../contracts/service-names';

/** Variables every service reads; each service adds its own and its defaults. */
export const ServiceEnv = BaseEnv.extend({
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** PostgreSQL's plan_cache_mode for the service's connections: `auto` (PostgreSQL's default) or `force_custom_plan` (see planCacheOptions). */
  DB_PLAN_CACHE_MODE: z.enum(['auto', 'force_custom_plan']).default('auto'),
  CONSUMER_PREFETCH: z.coerce.number().int().min(1).max(1000).default(256),
  CONSUMER_MAX_BATCH: z.coerce.number().int().min(1).max(1000).default(256),
  CONSUMER_BATCH_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(20),
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
});

/** A service's env schema: the shared variables plus PORT and DATABASE_URL with the service's own defaults. */
export function serviceEnv(defaults: { port: number; databaseUrl: string }) {
  return ServiceEnv.extend({
    PORT: z.coerce.number().int().min(0).max(65535).default(defaults.port),
    DATABASE_URL: DatabaseUrl.default(defaults.databaseUrl),
  });
}
export type ServiceConfig = z.infer<ReturnType<typeof serviceEnv>>;

export type ServiceContext<S extends Record<string, unknown>, C extends ServiceConfig> = {
  config: C;
  log: Logger;
  registry: Registry;
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
  routes: (ctx: ServiceContext<S, C>) => Router;
  /** The service's part of the saga: what it does with each batch of the events it consumes. */
  handler: (ctx: ServiceContext<S, C>) => BatchHandler;
  /** Extra long-running parts (e.g. a LISTEN connection), started after HTTP and stopped before the pool. */
  extras?: (ctx: ServiceContext<S, C>) => Promise<{ stop: () => Promise<void> }>;
};

export type RunningService = { port: number; stop: () => Promise<void>; log: Logger };

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
  const pool = createPool(
    config.DATABASE_URL,
    log,
    {
      max: config.DB_POOL_MAX,
      application_name: def.name,
      options: planCacheOptions(config.DB_PLAN_CACHE_MODE),
    } as pg.PoolConfig,
    registry,
  );
  const db = drizzle(pool, { schema: def.schema });
  const consumerName = consumerQueueOf(def.name);
  const inbox = { retentionHours: config.INBOX_RETENTION_HOURS, pruneEveryMs: config.INBOX_PRUNE_EVERY_MS };
  const ctx: ServiceContext<S, C> = { config, log, registry, pool, db, consumer: consumerName, inbox };

  const consumer = createConsumer({
    url: config.RABBITMQ_URL,
    exchange: config.EVENTS_EXCHANGE,
    queue: consumerName,
    handler: def.handler(ctx),
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

  let shuttingDown = false;
  const app = createHttpApp(log, registry, config.HTTP_BODY_LIMIT);
  app.use(
    createOpsRouter(
      registry,
      async () => {
        const database = await pool.query('SELECT 1').then(
          () => true,
          () => false,
        );
        return { database, broker: consumer.isReady() };
      },
      () => shuttingDown,
    ),
  );
  app.use(def.routes(ctx));
  finishHttpApp(app);
  const http = await listen(app, config.PORT);
  const port = (http.server.address() as { port: number }).port;
  const extras = def.extras ? await def.extras(ctx) : undefined;
  consumer.start();
  // A component without an outbox table in its schema (the monitor publishes nothing) has nothing to prune.
  const outboxPruner =
    'outbox' in def.schema
      ? startOutboxPruner(pool, log, {
          retentionHours: config.OUTBOX_RETENTION_HOURS,
          everyMs: config.OUTBOX_PRUNE_EVERY_MS,
        })
      : undefined;
  if (outboxPruner && config.OUTBOX_RETENTION_HOURS >= config.INBOX_RETENTION_HOURS) {
    // A reconcile republishes up to OUTBOX_RETENTION_HOURS of events; a consumer that forgot an id applies it again.
    log.warn(
      { outboxRetentionHours: config.OUTBOX_RETENTION_HOURS, inboxRetentionHours: config.INBOX_RETENTION_HOURS },
      'OUTBOX_RETENTION_HOURS should be shorter than INBOX_RETENTION_HOURS',
    );
  }
  log.info({ port, database: redactUrl(config.DATABASE_URL), queue: consumerName }, 'service started');

  return {
    port,
    log,
    async stop() {
      shuttingDown = true;
      await extras?.stop();
      await http.close();
      await consumer.stop();
      await outboxPruner?.stop();
      await pool.end();
      await stopTracing();
    },
  };
}

export { createLogger };
