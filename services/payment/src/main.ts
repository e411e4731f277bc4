/** The payment service: customer accounts; authorizes payments for orders. `npm run payment`. */
import { exitOnStartupError, onShutdown } from '@saga/common/lifecycle';
import { createLogger } from '@saga/common/logger';
import { runService } from '@saga/common/service';
import { loadConfig } from './config';
import * as schema from './db/schema';
import { paymentRoutes } from './http/routes';
import { paymentHandler } from './messaging/handlers';

async function main() {
  const config = loadConfig();
  const service = await runService({
    name: 'payment',
    config,
    schema,
    routes: ({ db }) => paymentRoutes(db),
    handler: ({ pool }) => paymentHandler(pool, config.PAYMENT_LIMIT_CENTS),
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

main().catch((err) => exitOnStartupError(createLogger('payment'), err));
