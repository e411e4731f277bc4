/** npm run migrate: apply every service's committed drizzle migrations, idempotently. */
import { createLogger } from '@saga/common/runtime/logger';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { parseEnv } from '@saga/common/runtime/config';
import { SERVICES } from '@saga/common/contracts/service-names';
import { ensureRelaySlots, SlotEnv } from '../cdc-relay/src/slots';
import { AdminEnv, layoutOf, loadAdminConfig, migrateAll, urlForDatabase } from './lib/admin';

answerArgs({
  name: 'saga migrate',
  summary:
    "apply every service's committed migrations, grant each role what it needs, create the relay's slots; idempotent",
  env: AdminEnv.extend(SlotEnv.shape),
});

async function main() {
  const config = loadAdminConfig();
  const say = (m: string) => console.log(m);
  await migrateAll(config, say);
  // The relay's slots, after the publication the migrations create.
  const layout = layoutOf(config);
  const sources = SERVICES.map((s) => ({ name: s, url: urlForDatabase(layout.servers[s], layout.databases[s]) }));
  await ensureRelaySlots(sources, parseEnv(SlotEnv, process.env).RELAY_SLOT_PREFIX, say);
}

main().catch((err) => {
  createLogger('migrate').fatal({ err }, 'migrate failed');
  console.error(`migrate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
