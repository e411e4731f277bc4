/** The order service: takes orders and reports their state. `npm run order`. */
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { OrderEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { createOrderNotifier, type OrderNotifier } from './http/order-notifier';
import { orderRoutes } from './http/routes';
import { orderHandler } from './messaging/handlers';

async function main() {
  const config = loadConfig();
  let notifier: OrderNotifier | undefined;
  const service = await runService({
    name: 'order',
    config,
    schema,
    routes: ({ pool, log }) => {
      notifier = createOrderNotifier(config.DATABASE_URL, pool, log);
      return orderRoutes(pool, notifier, log, config.SSE_HEARTBEAT_MS);
    },
    handler: ({ pool, consumer, inbox }) => orderHandler(pool, consumer, inbox),
    extras: async () => ({ stop: async () => notifier?.stop() }),
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

answerArgs({
  name: 'saga order',
  summary: 'the order service: takes orders (HTTP :8000) and follows each through the saga',
  env: OrderEnv,
});
main().catch((err) => exitOnStartupError(createLogger('order'), err));
