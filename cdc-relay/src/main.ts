/** The CDC relay: streams every outbox INSERT of each source database to RabbitMQ. `npm run relay`. */
import express from 'express';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger, redactUrl } from '@saga/common/runtime/logger';
import { createMetricsRegistry, createMetricsRouter, createOpsRouter, listen } from '@saga/common/runtime/ops';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { operatorQueues, startQueueDepthGauge } from '@saga/common/messaging/operator-queues';
import { DATABASE_OWNERS } from '@saga/common/contracts/service-names';
import { startTracing, stopTracing } from '@saga/common/runtime/tracing';
import { loadConfig, RelayEnv } from './config';
import { runReconcileCommand, runRecoverCommand } from './reconcile-command';
import { createRelay } from './relay';
import { drainDeadline } from './session';

async function main() {
  const config = loadConfig();
  const log = createLogger('cdc-relay', config.LOG_LEVEL, config.LOG_FLUSH_MS);
  if (startTracing('cdc-relay')) log.info('tracing on: a span per event published, exported as OTEL_* configures');
  const registry = createMetricsRegistry('cdc-relay');
  const relay = createRelay(config, log, registry);
  let shuttingDown = false;
  const app = express();
  app.disable('x-powered-by');
  // The relay has no API: its one listener is operator-only (probes and metrics), like a service's admin listener.
  app.use(createOpsRouter(relay.ready, () => shuttingDown));
  app.use(createMetricsRouter(registry));
  const http = await listen(app, config.RELAY_PORT);
  log.info(
    {
      port: config.RELAY_PORT,
      sources: config.RELAY_SOURCES.map((s) => ({ name: s.name, url: redactUrl(s.url) })),
      exchange: config.EVENTS_EXCHANGE,
    },
    'relay started',
  );
  relay.start();
  // Operator queues (unroutable, invalid, each dead-letter queue) as a gauge on /metrics: alert on it, not a full disk.
  const queueDepth = startQueueDepthGauge({
    url: config.RABBITMQ_URL,
    exchange: config.EVENTS_EXCHANGE,
    queues: operatorQueues(config.EVENTS_EXCHANGE, DATABASE_OWNERS),
    registry,
    log,
  });
  onShutdown(log, config.SHUTDOWN_TIMEOUT_MS, async () => {
    shuttingDown = true;
    // The drains' deadline counts from the signal, whatever stops first.
    const drainBy = drainDeadline(config.SHUTDOWN_TIMEOUT_MS);
    await Promise.all([queueDepth.stop(), relay.stop(drainBy)]);
    await http.close();
    await stopTracing();
  });
}

if (process.argv[2] === 'reconcile') {
  runReconcileCommand(process.argv.slice(3)).catch((err) => exitOnStartupError(createLogger('cdc-relay'), err));
} else if (process.argv[2] === 'recover') {
  runRecoverCommand(process.argv.slice(3)).catch((err) => exitOnStartupError(createLogger('cdc-relay'), err));
} else {
  answerArgs({
    name: 'saga relay',
    summary:
      'the CDC relay: streams every outbox INSERT of each source database to RabbitMQ (health and metrics on RELAY_PORT)',
    details: [
      'reconcile --help: republish the outbox rows of a time window (after a database failover or a lost slot)',
      'recover --help: create a lost replication slot again and republish what it missed (docs/failover.md)',
    ],
    env: RelayEnv,
  });
  main().catch((err) => exitOnStartupError(createLogger('cdc-relay'), err));
}
