/**
 * saga seed (one-shot; docker compose runs it): wait until every service is ready, then add the demo catalogue and
 * accounts that are missing, so `npm run demo` gives the same three outcomes as under `npm start`. Idempotent.
 */
import { answerArgs } from '@saga/common/runtime/cli-args';
import { loadSeedConfig, SeedEnv, seedIfEmpty, urls, waitReady } from './demo-data';

async function main() {
  const config = loadSeedConfig();
  const u = urls();
  await Promise.all(Object.values(u).map((url) => waitReady(url, config.SEED_TIMEOUT_MS)));
  const added = await seedIfEmpty(u);
  console.log(added ? `seed: added ${added} demo products and accounts` : 'seed: demo data already present');
}

answerArgs({
  name: 'saga seed',
  summary: 'add the demo catalogue and accounts that are missing (waits for the services first)',
  env: SeedEnv,
});
main().catch((err) => {
  console.error(`seed failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
