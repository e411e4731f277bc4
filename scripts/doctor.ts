/**
 * npm run doctor: check what `npm start` and `npm test` need of this machine (Node, PostgreSQL reachable as a
 * superuser with wal_level=logical, RabbitMQ, rabbitmqctl, free ports, databases migrated) and print what to fix.
 * Exit 0 when everything needed is there, 1 otherwise. Changes nothing.
 */
import { createServer } from 'node:net';
import pg from 'pg';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { SERVICES } from '@saga/common/contracts/service-names';
import { SQLSTATE } from '@saga/common/db/sqlstate';
import { AdminEnv, layoutOf, loadAdminConfig, urlForDatabase } from './lib/admin';
import {
  checkNode,
  checkPostgres,
  checkRabbitmq,
  checkRabbitmqctl,
  formatChecks,
  type Check,
} from './lib/prerequisites';

const PORTS = { order: 8000, inventory: 8001, payment: 8002, relay: 8010 };

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

/** Databases exist and carry their migrations (informative: npm start, or `npm run setup && npm run migrate`, makes both so). */
async function checkDatabases(): Promise<Check[]> {
  const layout = layoutOf(loadAdminConfig());
  const out: Check[] = [];
  for (const s of SERVICES) {
    const client = new pg.Client({
      connectionString: urlForDatabase(layout.servers[s], layout.databases[s]),
      connectionTimeoutMillis: 3000,
    });
    try {
      await client.connect();
      const { rows } = await client.query<{ n: string | null }>(
        'SELECT (SELECT count(*) FROM drizzle.' + pg.escapeIdentifier(`__drizzle_migrations_${s}`) + ')::text AS n',
      );
      out.push({
        name: `database ${layout.databases[s]}`,
        ok: true,
        detail: `${rows[0]?.n ?? 0} migration(s) applied`,
      });
    } catch (err) {
      // Not an error: npm start runs setup and migrate first.
      const code = (err as { code?: string }).code;
      if (code === SQLSTATE.INVALID_CATALOG_NAME || code === SQLSTATE.UNDEFINED_TABLE)
        out.push({
          name: `database ${layout.databases[s]}`,
          ok: true,
          detail: 'not set up yet (npm start, or npm run setup && npm run migrate, does it)',
        });
      else
        out.push({
          name: `database ${layout.databases[s]}`,
          ok: false,
          detail: (err as Error).message,
          fix: 'npm run setup && npm run migrate',
        });
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return out;
}

async function main() {
  const config = loadAdminConfig();
  const servers = [...new Set(Object.values(layoutOf(config).servers))];
  const checks: Check[] = [checkNode()];
  for (const url of servers) checks.push(...(await checkPostgres(url)));
  checks.push(await checkRabbitmq(config.RABBITMQ_URL));
  checks.push(checkRabbitmqctl('setup applies queue-bound policies with it and the tests create a vhost per file'));
  if (checks.every((c) => c.ok)) checks.push(...(await checkDatabases()));
  for (const [name, port] of Object.entries(PORTS)) {
    if (!(await portFree(port)))
      checks.push({
        name: `port ${port}`,
        ok: false,
        detail: `in use (npm start runs ${name} there)`,
        fix: `stop what listens on ${port}, or a stack already running (npm start) is fine to keep`,
      });
  }
  console.log(formatChecks(checks));
  const failed = checks.filter((c) => !c.ok);
  console.log(
    failed.length
      ? `\n${failed.length} problem(s); fix them, then run npm run doctor again.`
      : '\nall good: npm start, then npm run demo; npm test',
  );
  process.exitCode = failed.length ? 1 : 0;
}

answerArgs({
  name: 'saga doctor',
  summary: 'check the prerequisites of npm start and npm test and print what to fix; changes nothing',
  env: AdminEnv,
});
main().catch((err) => {
  console.error(`doctor failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
