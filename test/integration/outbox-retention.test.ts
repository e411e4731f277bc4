/** Outbox retention: rows stay after their transaction and are pruned by age, in batches, with the service's own role. */
import pg from 'pg';
import { pruneOutboxRound, startOutboxPruner } from '@saga/common/db/outbox-retention';
import { createLogger } from '@saga/common/runtime/logger';
import { createTestEnv, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { startService } from '../support/stack';
import { waitUntil } from '../support/wait';

let env: TestEnv;
let pool: pg.Pool;

beforeAll(async () => {
  env = await createTestEnv('retain');
  pool = new pg.Pool({ connectionString: env.serviceUrl('order'), max: 2 });
});
afterAll(async () => {
  await killAll();
  await pool.end();
  await env.close();
});

/** `n` outbox rows created `hoursAgo` ago, as the service writes them (its role). Answers their ids. */
async function rows(n: number, hoursAgo: number): Promise<string[]> {
  const { rows: out } = await pool.query<{ id: string }>(
    `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers, created_at)
     SELECT gen_random_uuid(), 'order', 'agg', 'OrderPlaced', '{"version":1}', '{"correlationId":"agg"}', now() - make_interval(hours => $2)
       FROM generate_series(1, $1) RETURNING id`,
    [n, hoursAgo],
  );
  return out.map((r) => r.id);
}
const present = async (ids: string[]) =>
  (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE id = ANY($1::uuid[])', [ids])).rows[0]!
    .n;

describe('outbox retention', () => {
  it('keeps a row after the transaction that wrote it (no purge trigger any more)', async () => {
    const ids = await rows(3, 0);
    expect(await present(ids)).toBe(3);
  });

  it('prunes rows older than the retention in full batches and keeps the younger ones', async () => {
    const old = await rows(12, 30);
    const young = await rows(4, 2);
    // 5 per batch: two full batches and a short one, in one round.
    expect(await pruneOutboxRound(pool, { retentionHours: 24, batch: 5 })).toBe(12);
    expect(await present(old)).toBe(0);
    expect(await present(young)).toBe(4);
  });

  it('spreads a backlog over rounds: a round stops after its budget of batches', async () => {
    const old = await rows(9, 48);
    expect(await pruneOutboxRound(pool, { retentionHours: 24, batch: 3, maxBatchesPerRound: 2 })).toBe(6);
    expect(await present(old)).toBe(3);
    expect(await pruneOutboxRound(pool, { retentionHours: 24, batch: 3, maxBatchesPerRound: 2 })).toBe(3);
  });

  it('a round asked to stop ends after the batch under way', async () => {
    const old = await rows(9, 48);
    let batches = 0;
    // Stopping is asked once the first batch has run: the round deletes that batch and no other.
    const stopped = () => batches++ > 0;
    expect(await pruneOutboxRound(pool, { retentionHours: 24, batch: 3 }, stopped)).toBe(3);
    expect(await present(old)).toBe(6);
    expect(await pruneOutboxRound(pool, { retentionHours: 24, batch: 3 })).toBe(6);
  });

  it('pruning publishes nothing: the publication carries inserts only', async () => {
    const admin = new pg.Client({ connectionString: env.adminUrl('order') });
    await admin.connect();
    const { rows } = await admin.query(
      "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = 'outbox_pub'",
    );
    await admin.end();
    expect(rows).toEqual([{ pubinsert: true, pubupdate: false, pubdelete: false, pubtruncate: false }]);
  });

  it('the scheduled pruner deletes old rows on its own and stops cleanly', async () => {
    const old = await rows(7, 25);
    const young = await rows(2, 1);
    const pruner = startOutboxPruner(pool, createLogger('test', 'silent'), { retentionHours: 24, everyMs: 50 });
    await waitUntil(async () => (await present(old)) === 0, { message: 'old rows pruned', timeoutMs: 10_000 });
    await pruner.stop();
    expect(await present(young)).toBe(2);
  });

  it('a running service prunes its own outbox on its schedule (OUTBOX_RETENTION_HOURS, OUTBOX_PRUNE_EVERY_MS)', async () => {
    const old = await rows(5, 30);
    const young = await rows(2, 20);
    const order = await startService(env, 'order', { OUTBOX_RETENTION_HOURS: '24', OUTBOX_PRUNE_EVERY_MS: '100' });
    await waitUntil(async () => (await present(old)) === 0, {
      message: 'the service pruned its old outbox rows',
      timeoutMs: 20_000,
    });
    expect(await present(young)).toBe(2);
    await order.proc.waitForLog((l) => l.msg === 'pruned old outbox rows' && Number(l.pruned) >= 5);
    expect((await order.proc.kill('SIGTERM')).code).toBe(0);
  });
});
