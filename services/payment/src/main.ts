/** The payment service: customer accounts; authorizes payments for orders. `npm run payment`. */
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { PaymentEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { paymentAdminRoutes, paymentRoutes } from './http/routes';
import { paymentHandler } from './messaging/handlers';

async function main() {
  const config = loadConfig();
  const service = await runService({
    name: 'payment',
    config,
    schema,
    routes: ({ db }) => paymentRoutes(db),
    adminRoutes: ({ db }) => paymentAdminRoutes(db),
    handler: ({ pool, consumer, inbox }) => paymentHandler(pool, consumer, config.PAYMENT_LIMIT_CENTS, inbox),
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

answerArgs({
  name: 'saga payment',
  summary: 'the payment service: customer accounts (HTTP :8002); authorizes payments for orders',
  env: PaymentEnv,
});
main().catch((err) => exitOnStartupError(createLogger('payment'), err));
