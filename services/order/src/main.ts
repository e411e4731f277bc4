/** The order service: takes orders and reports their state. `npm run order`. */
import { authenticate, createVerifier } from '@saga/common/http/auth';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { OrderEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { Counter } from 'prom-client';
import { countPending } from './db/order-repository';
import { createAdmission } from './http/admission';
import { createOrderNotifier, type OrderNotifier } from './http/order-notifier';
import { orderRoutes } from './http/routes';
import { orderHandler } from './messaging/handlers';

/** The backlog is counted at most this often while orders arrive, over orders placed in the last PENDING_WINDOW_S. */
const PENDING_REFRESH_MS = 200;
const PENDING_WINDOW_S = 600;

async function main() {
  const config = loadConfig();
  let notifier: OrderNotifier | undefined;
  const service = await runService({
    name: 'order',
    config,
    schema,
    routes: ({ pool, log, registry }) => {
      notifier = createOrderNotifier(config.DATABASE_URL, pool, log);
      const verifier = createVerifier(config);
      if (verifier.development)
        log.warn('no AUTH_ISSUER: accepting tokens of the development issuer (never in production)');
      const shed = new Counter({
        name: 'order_admission_refused_total',
        help: 'POST /orders answered 503 because ORDER_PENDING_MAX orders were in progress',
        registers: [registry],
      });
      const admission = createAdmission(() => countPending(pool, PENDING_WINDOW_S), {
        maxPending: config.ORDER_PENDING_MAX,
        refreshMs: PENDING_REFRESH_MS,
        onShed: () => shed.inc(),
        onReadError: (err) => log.warn({ err }, 'could not count the orders in progress; admitting by the last count'),
      });
      return orderRoutes(pool, notifier, log, {
        admission,
        authenticate: authenticate(verifier),
        heartbeatMs: config.SSE_HEARTBEAT_MS,
        rate: { perSecond: config.ORDER_RATE_PER_SECOND, burst: config.ORDER_RATE_BURST },
        queueMax: config.ORDER_QUEUE_MAX,
        // Paced only while sagas queue up: then a POST's few ms more are nothing against its saga's wait, and fewer
        // commits leave more of the machine to finishing them (docs/decisions/0020-paced-order-writes.md).
        writeIntervalMs: () => (admission.busy() ? config.ORDER_WRITE_INTERVAL_MS : 0),
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
