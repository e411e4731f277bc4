/**
 * The saga monitor: consumes every saga event into its own database and serves timelines, stuck sagas, a page and
 * the saga metrics on its admin listener (HTTP :8103; probes on :8003). An observer: it sends no commands and no
 * service depends on it. `npm run monitor`.
 */
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { createCatchUp } from './catch-up';
import { MonitorEnv, loadConfig } from './config';
import { startPruner } from './db/pruner';
import * as schema from './db/schema';
import { monitorRoutes } from './http/routes';
import { startMonitorBrokerSession } from './messaging/dead-letters';
import { monitorHandler } from './messaging/handlers';
import { createSagaMetrics } from './metrics';

async function main() {
  const config = loadConfig();
  const catchUp = createCatchUp();
  const service = await runService({
    name: 'monitor',
    config,
    schema,
    // An operator UI showing every customer's orders: only on the admin listener; the public port serves the probes.
    adminRoutes: ({ pool }) => monitorRoutes(pool, config.SAGA_STUCK_AFTER_MS, catchUp),
    handler: ({ pool, consumer, inbox, registry }) => {
      const metrics = createSagaMetrics(registry, pool, config.SAGA_STUCK_AFTER_MS, catchUp);
      return monitorHandler(pool, consumer, metrics.committed, inbox);
    },
    extras: async ({ pool, log, registry, consumer }) => {
      const session = startMonitorBrokerSession({
        url: config.RABBITMQ_URL,
        exchange: config.EVENTS_EXCHANGE,
        eventsQueue: consumer,
        pool,
        log,
        registry,
        catchUp,
      });
      const pruner = startPruner(pool, log, {
        retentionHours: config.MONITOR_RETENTION_HOURS,
        everyMs: config.MONITOR_PRUNE_EVERY_MS,
      });
      return {
        async stop() {
          await pruner.stop();
          await session.stop();
        },
      };
    },
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

answerArgs({
  name: 'saga monitor',
  summary:
    'the saga monitor (admin HTTP :8103, probes on :8003): every saga event into its own database; timelines, stuck sagas, a page and saga metrics',
  env: MonitorEnv,
});
main().catch((err) => exitOnStartupError(createLogger('monitor'), err));
