/**
 * The saga monitor: consumes every saga event into its own database and serves timelines, stuck sagas, a page and
 * the saga metrics (HTTP :8003). An observer: it sends no commands and no service depends on it. `npm run monitor`.
 */
import { answerArgs } from '@saga/common/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/lifecycle';
import { createLogger } from '@saga/common/logger';
import { runService } from '@saga/common/service';
import { MonitorEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { monitorRoutes } from './http/routes';
import { startDeadLetterReports } from './messaging/dead-letters';
import { monitorHandler } from './messaging/handlers';
import { createSagaMetrics } from './metrics';

async function main() {
  const config = loadConfig();
  const service = await runService({
    name: 'monitor',
    config,
    schema,
    routes: ({ pool }) => monitorRoutes(pool, config.SAGA_STUCK_AFTER_MS),
    handler: ({ pool, consumer, inbox, registry }) => {
      const metrics = createSagaMetrics(registry, pool, config.SAGA_STUCK_AFTER_MS);
      return monitorHandler(pool, consumer, metrics.observe, inbox);
    },
    extras: async ({ pool, log }) => startDeadLetterReports({ url: config.RABBITMQ_URL, exchange: config.EVENTS_EXCHANGE, pool, log }),
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

answerArgs({ name: 'saga monitor', summary: 'the saga monitor (HTTP :8003): every saga event into its own database; timelines, stuck sagas, a page and saga metrics', env: MonitorEnv });
main().catch((err) => exitOnStartupError(createLogger('monitor'), err));
