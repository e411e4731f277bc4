import { randomUUID } from 'node:crypto';
import pg from 'pg';

export type Written = { id: string; aggregateId: string; seq: number };

/**
 * Writes raw outbox rows as a service would: transactions of random sizes, some rows deleted in the very
 * transaction that inserted them, one transaction in `rollbackEvery` rolled back (its rows must never arrive).
 * Each aggregate's rows carry an increasing `seq` so that delivery order can be checked.
 */
export async function writeOutbox(
  url: string,
  opts: {
    rows: number;
    maxTxnSize?: number;
    aggregates?: number;
    deleteShare?: number;
    rollbackEvery?: number;
    prefix?: string;
    random?: () => number;
  },
): Promise<Written[]> {
  const random = opts.random ?? Math.random;
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  const committed: Written[] = [];
  const seqs = new Map<string, number>();
  let txnNo = 0;
  try {
    let left = opts.rows;
    while (left > 0) {
      const size = Math.min(left, 1 + Math.floor(random() * (opts.maxTxnSize ?? 20)));
      txnNo++;
      const rollback = opts.rollbackEvery !== undefined && txnNo % opts.rollbackEvery === 0;
      const batch: Written[] = [];
      const values: unknown[] = [];
      const tuples: string[] = [];
      for (let i = 0; i < size; i++) {
        const aggregateId = `${opts.prefix ?? 'agg'}-${Math.floor(random() * (opts.aggregates ?? 10))}`;
        const seq = (seqs.get(aggregateId) ?? 0) + 1;
        if (!rollback) seqs.set(aggregateId, seq);
        const w = { id: randomUUID(), aggregateId, seq };
        batch.push(w);
        const n = values.length;
        tuples.push(`($${n + 1}, 'test', $${n + 2}, 'Tested', $${n + 3}, $${n + 4})`);
        values.push(
          w.id,
          aggregateId,
          JSON.stringify({ version: 1, data: { seq, aggregateId } }),
          JSON.stringify({ correlationId: aggregateId, causationId: null }),
        );
      }
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ${tuples.join(', ')}`,
        values,
      );
      const toDelete = batch.filter(() => random() < (opts.deleteShare ?? 0)).map((w) => w.id);
      if (toDelete.length) await client.query('DELETE FROM outbox WHERE id = ANY($1::uuid[])', [toDelete]);
      if (rollback) {
        await client.query('ROLLBACK');
      } else {
        await client.query('COMMIT');
        committed.push(...batch);
        left -= size;
      }
    }
  } finally {
    await client.end();
  }
  return committed;
}

/** A seeded generator, so a failing run can be repeated. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
