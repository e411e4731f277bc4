/**
 * npm run setup: prepare the PostgreSQL server and the RabbitMQ broker named by the environment, idempotently.
 * Safe to run any number of times; says what it changed.
 */
import { assertEventTopology } from '@saga/common/messaging/topology';
import { brokerAddresses, connectBroker } from '@saga/common/messaging/broker';
import { createLogger, redactUrl } from '@saga/common/runtime/logger';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { applyQueuePolicies } from './lib/queue-policies';
import { ensureBrokerUsers } from './lib/broker-users';
import { AdminEnv, ensureLogicalReplication, ensureRolesAndDatabases, loadAdminConfig } from './lib/admin';

async function main() {
  const config = loadAdminConfig();
  const say = (m: string) => console.log(`setup: ${m}`);
  say(
    `postgres at ${redactUrl(config.PG_ADMIN_URL)}, rabbitmq at ${brokerAddresses(config.RABBITMQ_URL).map(redactUrl).join(', ')}`,
  );
  await ensureLogicalReplication(config, say);
  await ensureRolesAndDatabases(config, say);
  const conn = await connectBroker(config.RABBITMQ_URL);
  try {
    const ch = await conn.createChannel();
    await assertEventTopology(ch, config.EVENTS_EXCHANGE);
    say(`rabbitmq: exchange ${config.EVENTS_EXCHANGE} with its alternate exchange in place`);
  } finally {
    await conn.close();
  }
  await applyQueuePolicies(config, say);
  await ensureBrokerUsers(config, say);
  say('done');
}

answerArgs({
  name: 'saga setup',
  summary:
    'prepare the PostgreSQL servers (wal_level=logical, roles, databases) and the broker (exchanges, operator queues, queue-bound policies, a user per component when their passwords are set); idempotent',
  env: AdminEnv,
});
main().catch((err) => {
  createLogger('setup').fatal({ err }, 'setup failed');
  console.error(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
