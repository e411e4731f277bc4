/** npm run migrate: apply every service's committed drizzle migrations, idempotently. */
import { createLogger } from '@saga/common';
import { answerArgs } from '@saga/common/cli-args';
import { AdminEnv, loadAdminConfig, migrateAll } from './lib/admin';

answerArgs({ name: 'saga migrate', summary: "apply every service's committed migrations and grant each role what it needs; idempotent", env: AdminEnv });

migrateAll(loadAdminConfig(), (m) => console.log(m)).catch((err) => {
  createLogger('migrate').fatal({ err }, 'migrate failed');
  console.error(`migrate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
