/** The CDC relay: streams every outbox INSERT of each source database to RabbitMQ. `npm run relay`. */
import express from 'express';
import { createLogger, createMetricsRegistry, createOpsRouter, exitOnStartupError, listen, onShutdown, redactUrl } from '@saga/common';
import { loadConfig } from './config';
import { createRelay } from './relay';

async function main() {
  const config = loadConfig();
  const log = createLogger('cdc-relay', config.LOG_LEVEL);
  const registry = createMetricsRegistry('cdc-relay');
  const relay = createRelay(config, log, registry);
  let shuttingDown = false;
  const app = express();
  app.disable('x-powered-by');
  app.use(createOpsRouter(registry, relay.ready, () => shuttingDown));
  const http = await listen(app, config.RELAY_PORT);
  log.info(
    { port: config.RELAY_PORT, sources: config.RELAY_SOURCES.map((s) => ({ name: s.name, url: redactUrl(s.url) })), exchange: config.EVENTS_EXCHANGE },
    'relay started',
  );
  relay.start();
  onShutdown(log, config.SHUTDOWN_TIMEOUT_MS, async () => {
    shuttingDown = true;
    await relay.stop();
    await http.close();
  });
}

main().catch((err) => exitOnStartupError(createLogger('cdc-relay'), err));
