/** npm run migrate: apply every service's committed drizzle migrations, idempotently. */
import { createLogger } from '@saga/common';
import { loadAdminConfig, migrateAll } from './lib/admin';

migrateAll(loadAdminConfig(), (m) => console.log(m)).catch((err) => {
  createLogger('migrate').fatal({ err }, 'migrate failed');
  console.error(`migrate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
