/** The inventory service: products, prices and stock; reserves stock for orders. `npm run inventory`. */
import { answerArgs } from '@saga/common/runtime/cli-args';
import { exitOnStartupError, onShutdown } from '@saga/common/runtime/lifecycle';
import { createLogger } from '@saga/common/runtime/logger';
import { runService } from '@saga/common/runtime/service';
import { InventoryEnv, loadConfig } from './config';
import * as schema from './db/schema';
import { inventoryAdminRoutes, inventoryRoutes } from './http/routes';
import { inventoryHandler } from './messaging/handlers';

async function main() {
  const config = loadConfig();
  const service = await runService({
    name: 'inventory',
    config,
    schema,
    routes: ({ db }) => inventoryRoutes(db),
    adminRoutes: ({ db }) => inventoryAdminRoutes(db),
    handler: ({ pool, consumer, inbox }) => inventoryHandler(pool, consumer, inbox),
  });
  onShutdown(service.log, config.SHUTDOWN_TIMEOUT_MS, service.stop);
}

answerArgs({
  name: 'saga inventory',
  summary: 'the inventory service: products, prices and stock (HTTP :8001); reserves stock for orders',
  env: InventoryEnv,
});
main().catch((err) => exitOnStartupError(createLogger('inventory'), err));
