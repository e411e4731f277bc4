/** Shared pieces of the benchmarks: timing, percentiles, writers, a consumer that records arrival times. */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import amqp, { type ChannelModel } from 'amqplib';
import pg from 'pg';
import { assertEventTopology } from '@saga/common/messaging/topology';

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
export function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
}

/** A JSON payload of about `bytes` bytes, as a service's event would be. */
export function payload(bytes: number, extra: Record<string, unknown> = {}) {
  const base = { version: 1, data: { orderId: randomUUID(), ...extra, pad: '' } };
  base.data.pad = 'x'.repeat(Math.max(0, bytes - JSON.stringify(base).length));
  return base;
}

const HEADERS = JSON.stringify({ correlationId: 'bench', causationId: null });

/**
 * How a backlog's rows are spread over aggregates. `rowsPerAggregate`: consecutive rows share an aggregate, a new one
 * every n rows, as the saga's orders do (a handful of events each): the case the relay is sized for. `aggregates`:
 * every row goes to one of n aggregates in turn; with few of them, each is a hot aggregate whose events the relay
 * publishes one per confirm round trip (per-aggregate order), the worst case.
 */
export type AggregateSpread = { rowsPerAggregate: number } | { aggregates: number };
/** One order-like aggregate per 3 rows. */
export const ORDER_AGGREGATES: AggregateSpread = { rowsPerAggregate: 3 };
/** 64 aggregates over the whole backlog: hot aggregates. */
export const HOT_AGGREGATES: AggregateSpread = { aggregates: 64 };
export const describeSpread = (a: AggregateSpread) =>
  'rowsPerAggregate' in a ? `one aggregate per ${a.rowsPerAggregate} rows` : `${a.aggregates} aggregates`;

/** Insert `rows` outbox rows in transactions of `perTxn`, as fast as one connection goes (the backlog). */
export async function insertBacklog(
  url: string,
  rows: number,
  bytes: number,
  perTxn = 500,
  spread: AggregateSpread = ORDER_AGGREGATES,
): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const body = JSON.stringify(payload(bytes));
  // $4: rows before this statement; $5: the spread's n.
  const aggregate =
    'rowsPerAggregate' in spread ? `'agg-' || (($4::int + i - 1) / $5::int)` : `'agg-' || ((($4::int + i) % $5::int))`;
  const n5 = 'rowsPerAggregate' in spread ? spread.rowsPerAggregate : spread.aggregates;
  try {
    for (let done = 0; done < rows; done += perTxn) {
      const n = Math.min(perTxn, rows - done);
      await c.query(
        `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
         SELECT gen_random_uuid(), 'bench', ${aggregate}, 'Tested', $1::jsonb, $2::jsonb FROM generate_series(1, $3) AS i`,
        [body, HEADERS, n, done, n5],
      );
    }
  } finally {
    await c.end();
  }
}

/** Single-row transactions from `connections` clients for `ms`; answers how many committed. */
export async function closedLoopWriters(url: string, connections: number, ms: number, bytes: number): Promise<number> {
  const body = JSON.stringify(payload(bytes));
  let committed = 0;
  const deadline = now() + ms;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        while (now() < deadline) {
          await c.query(
            `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'bench', 'agg-1', 'Tested', $1, $2)`,
            [body, HEADERS],
          );
          committed++;
        }
      } finally {
        await c.end();
      }
    }),
  );
  return committed;
}

const OUTBOX_INSERT = `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES ($1, 'bench', 'agg-1', 'Tested', $2, '${HEADERS}')`;

/**
 * Open-loop writer: one single-row transaction every 1/rate seconds for `ms`, on a small pool. Answers each
 * row's id and the time its COMMIT returned. `insertSql` takes ($1 id, $2 payload) for another table layout.
 */
export async function pacedWriter(
  url: string,
  rate: number,
  ms: number,
  bytes: number,
  insertSql = OUTBOX_INSERT,
): Promise<Map<string, number>> {
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  const committedAt = new Map<string, number>();
  const start = now();
  const total = Math.round((rate * ms) / 1000);
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    const id = randomUUID();
    inflight.push(
      pool.query(insertSql, [id, JSON.stringify(payload(bytes))]).then(() => {
        committedAt.set(id, now());
      }),
    );
  }
  await Promise.all(inflight);
  await pool.end();
  return committedAt;
}

/** A queue bound to every routing key, recording each message id's arrival time. */
export async function arrivals(rabbitUrl: string, exchange: string, queue: string) {
  const conn: ChannelModel = await amqp.connect(rabbitUrl);
  const ch = await conn.createChannel();
  await assertEventTopology(ch, exchange);
  await ch.assertQueue(queue, { durable: false, autoDelete: true });
  await ch.bindQueue(queue, exchange, '#');
  await ch.purgeQueue(queue);
  const at = new Map<string, number>();
  await ch.consume(queue, (m) => m && m.properties.messageId && at.set(String(m.properties.messageId), now()), {
    noAck: true,
  });
  return { at, close: () => conn.close().catch(() => undefined) };
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function outboxScans(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(
      "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE relname = 'outbox'",
    );
    return Number(rows[0]!.n);
  } finally {
    await c.end();
  }
}

export async function sql(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}
