/** Running the peer (pg-transactional-outbox) on a database of its own with its own table layout. */
import { DatabaseSetup } from 'pg-transactional-outbox';
import { urlForDatabase } from '../scripts/lib/admin';
import type { TestEnv } from '../test/support/env';
import { startProcess, type Running } from '../test/support/process';
import { waitUntil } from '../test/support/wait';
import { now, pacedWriter, payload, sleep, sql } from './lib';

const ADMIN = process.env.PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
let prepared: { url: string; slot: string; publication: string } | undefined;

async function prepare(env: TestEnv) {
  if (prepared) return prepared;
  const database = `${env.id}_peer`;
  await sql(ADMIN, `CREATE DATABASE "${database}"`);
  const url = urlForDatabase(ADMIN, database);
  const slot = `${env.id}_peer_slot`;
  const publication = 'peer_pub';
  const cfg = {
    outboxOrInbox: 'outbox' as const,
    database,
    schema: 'public',
    table: 'outbox',
    listenerRole: 'postgres',
    publication,
    replicationSlot: slot,
  };
  await sql(url, DatabaseSetup.dropAndCreateTable(cfg));
  await sql(
    url,
    `DROP PUBLICATION IF EXISTS ${publication}; CREATE PUBLICATION ${publication} FOR TABLE public.outbox WITH (publish = 'insert')`,
  );
  await sql(url, DatabaseSetup.setupReplicationSlot(cfg));
  prepared = { url, slot, publication };
  // Dropped with the env's databases; the slot name starts with the env id, so env.close() drops it too.
  return prepared;
}

function startListener(env: TestEnv, p: { url: string; slot: string; publication: string }): Running {
  return startProcess('dist/bench/peer-listener.js', {
    DATABASE_URL: p.url,
    RABBITMQ_URL: env.rabbitUrl,
    EVENTS_EXCHANGE: env.exchange,
    PEER_SLOT: p.slot,
    PEER_PUBLICATION: p.publication,
  });
}
const handled = (r: Running) => Number((r.logs[r.logs.length - 1] as { handled?: number } | undefined)?.handled ?? 0);

/** Same backlog as the relay's: rows committed while the listener is stopped, then time to publish them all. */
export async function peerBacklog(env: TestEnv, n: number, bytes: number): Promise<number> {
  const p = await prepare(env);
  const body = JSON.stringify(payload(bytes));
  for (let done = 0; done < n; done += 500) {
    await sql(
      p.url,
      `INSERT INTO outbox (id, aggregate_type, aggregate_id, message_type, payload) SELECT gen_random_uuid(), 'bench', 'agg-' || (i % 64), 'Tested', $1::jsonb FROM generate_series(1, $2) i`,
      [body, Math.min(500, n - done)],
    );
  }
  const listener = startListener(env, p);
  // From the moment the listener process is up (its first report), as the relay is timed from 'streaming'.
  await waitUntil(() => listener.logs.length > 0, { timeoutMs: 60_000, intervalMs: 5, message: 'peer listener up' });
  const t0 = now();
  await waitUntil(() => handled(listener) >= n, {
    timeoutMs: 900_000,
    intervalMs: 10,
    message: 'peer published the backlog',
  });
  const rate = n / ((now() - t0) / 1000);
  await listener.kill('SIGTERM');
  return rate;
}

/** The latency run's writer and listener, on the peer's table. */
export const peerLatency = {
  async start(env: TestEnv): Promise<Running> {
    const p = await prepare(env);
    await sql(p.url, 'TRUNCATE outbox');
    const r = startListener(env, p);
    await waitUntil(() => r.logs.length > 0, { timeoutMs: 30_000, message: 'peer listener up' });
    await sleep(500); // its replication stream starts after the process reports
    return r;
  },
  async write(env: TestEnv, rate: number, ms: number, bytes: number): Promise<Map<string, number>> {
    const p = await prepare(env);
    return pacedWriter(
      p.url,
      rate,
      ms,
      bytes,
      `INSERT INTO outbox (id, aggregate_type, aggregate_id, message_type, payload) VALUES ($1, 'bench', 'agg-1', 'Tested', $2)`,
    );
  },
};
