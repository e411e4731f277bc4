/**
 * Before the suite: remove what an interrupted earlier run left behind (test databases and their replication
 * slots, and RabbitMQ vhosts, named t<label>_<6 hex>…). Slots count against max_replication_slots and keep WAL, so leftovers from a
 * killed run would otherwise break the next one. Only inactive slots of test databases are touched.
 */
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import {
  checkNode,
  checkPostgres,
  checkRabbitmq,
  checkRabbitmqctl,
  formatChecks,
} from '../../scripts/lib/prerequisites';
import { removeLeftoverClusters } from './pg-cluster';

// Jest loads this file outside the test runtime (no moduleNameMapper): no @saga/* import here, nor in the files
// it imports (scripts/lib/prerequisites.ts imports only node:, pg and amqplib).
const rabbitmqctl = (...args: string[]) =>
  execFileSync('rabbitmqctl', ['-q', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const TEST_NAME = '^t[a-z0-9]{1,12}_[0-9a-f]{6}_';

/**
 * The integration tests need a PostgreSQL superuser with wal_level=logical, RabbitMQ, and rabbitmqctl (a vhost per
 * test file). Say which is missing and how to fix it, instead of failing later with a connection error.
 */
async function checkPrerequisites(adminUrl: string): Promise<void> {
  const checks = [
    checkNode(),
    ...(await checkPostgres(adminUrl)),
    await checkRabbitmq(process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'),
    checkRabbitmqctl('the integration tests create a RabbitMQ vhost per test file with it'),
  ];
  const failed = checks.filter((c) => !c.ok);
  if (failed.length) {
    throw new Error(
      `\n\nThe integration tests cannot run on this machine yet (npm run doctor checks the same; npm run test:unit needs none of it):\n${formatChecks(failed)}\n`,
    );
  }
}

export default async function globalSetup(): Promise<void> {
  const adminUrl = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  await checkPrerequisites(adminUrl);
  removeLeftoverClusters();
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const slots = await client.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots WHERE NOT active AND slot_name ~ $1',
      [TEST_NAME],
    );
    for (const s of slots.rows)
      await client.query('SELECT pg_drop_replication_slot($1)', [s.slot_name]).catch(() => undefined);
    const dbs = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname ~ $1', [
      TEST_NAME,
    ]);
    for (const d of dbs.rows)
      await client.query(`DROP DATABASE IF EXISTS "${d.datname}" WITH (FORCE)`).catch(() => undefined);
  } finally {
    await client.end();
  }
  try {
    for (const vhost of rabbitmqctl('list_vhosts', '--no-table-headers')
      .split('\n')
      .map((l) => l.trim())) {
      if (/^t[a-z0-9]{1,12}_[0-9a-f]{6}$/.test(vhost)) rabbitmqctl('delete_vhost', vhost);
    }
  } catch {
    /* rabbitmqctl unavailable: leftovers stay, nothing breaks */
  }
}
