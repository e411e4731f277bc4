/** The order service: takes orders and reports their state. `npm run order`. */
import { authenticate, createVerifier } from '@saga/common/http/auth';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { OrderEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { Counter, Gauge } from 'prom-client';
import { readBacklog } from './db/order-repository';
import { createAdmission } from './http/admission';
import { createOrderNotifier, type OrderNotifier } from './http/order-notifier';
import { orderRoutes } from './http/routes';
import { orderHandler } from './messaging/handlers';

/** The backlog is read at most this often while orders arrive, over orders placed in the last PENDING_WINDOW_S. */
const PENDING_REFRESH_MS = 200;
const PENDING_WINDOW_S = 600;
/**
 * The saga's wait is read from the order this many places behind the oldest in progress: up to this many stuck orders
 * (an event on a dead-letter queue) neither count in it nor make the saga look stopped.
 */
const STUCK_ALLOWANCE = 10;

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
        help: 'POST /orders answered 503 for the saga backlog: reason "backlog" (ORDER_PENDING_MAX orders in progress) or "wait" (an order accepted then would have waited longer than ORDER_ADMISSION_MAX_WAIT_MS)',
        labelNames: ['reason'],
        registers: [registry],
      });
      const admission = createAdmission(() => readBacklog(pool, PENDING_WINDOW_S, STUCK_ALLOWANCE), {
        maxPending: config.ORDER_PENDING_MAX,
        maxWaitMs: config.ORDER_ADMISSION_MAX_WAIT_MS,
        refreshMs: PENDING_REFRESH_MS,
        onShed: (reason) => shed.inc({ reason }),
        onReadError: (err) => log.warn({ err }, 'could not read the saga backlog; admitting by the last read'),
      });
      new Gauge({
        name: 'order_admission_wait_seconds',
        help: 'The wait for the saga an order accepted now would face, as admission judges it (0 while the saga stops, catches up or is idle)',
        registers: [registry],
        collect() {
          this.set(admission.waitMs() / 1000);
        },
      });
      return orderRoutes(pool, notifier, log, {
        admission,
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
