/** The order service: takes orders and reports their state. `npm run order`. */
import { authenticate, createVerifier } from '@saga/common/http/auth';
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
      const verifier = createVerifier(config);
      if (verifier.development)
        log.warn('no AUTH_ISSUER: accepting tokens of the development issuer (never in production)');
      return orderRoutes(pool, notifier, log, {
        authenticate: authenticate(verifier),
        heartbeatMs: config.SSE_HEARTBEAT_MS,
        rate: { perSecond: config.ORDER_RATE_PER_SECOND, burst: config.ORDER_RATE_BURST },
        queueMax: config.ORDER_QUEUE_MAX,
        streams: { perCaller: config.SSE_MAX_PER_CALLER, total: config.SSE_MAX_STREAMS },
      });
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
