/**
 * The relay against real PostgreSQL (logical replication) and real RabbitMQ, run as a child process as in
 * production. Every test writes rows with a prefix of its own and checks exactly those.
 */
import amqp from 'amqplib';
import pg from 'pg';
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { topologyNames } from '@saga/common/messaging/topology';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { closeConnections, collect, type Received } from '../../../test/support/amqp';
import { createTestEnv, type TestEnv } from '../../../test/support/env';
import { writeOutbox, seeded, type Written } from '../../../test/support/outbox-writer';
import { killAll, type Running } from '../../../test/support/process';
import { startRelayProc, waitRelayStreaming } from '../../../test/support/stack';
import { waitUntil } from '../../../test/support/wait';
import { parseLsn } from '../../src/lsn';

let env: TestEnv;
const running: Running[] = [];

const startRelay = (extra: Record<string, string> = {}) => {
  const r = startRelayProc(env, { RELAY_RETRY_MAX_MS: '500', ...extra });
  running.push(r);
  return r;
};
const streamingAll = waitRelayStreaming;

beforeAll(async () => {
  env = await createTestEnv('relay');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  await killAll();
  await env?.close();
});

/** Each test's messages: its own prefix, in arrival order. */
const mine = (msgs: Received[], prefix: string) => msgs.filter((m) => m.aggregateId?.startsWith(prefix));

function expectAllOnce(received: Received[], written: Written[]) {
  const ids = new Set(written.map((w) => w.id));
  const got = received.map((m) => m.id);
  expect(got.filter((id) => !ids.has(id!))).toEqual([]); // nothing else
  expect(new Set(got).size).toBe(ids.size); // every id
}

function expectPerAggregateOrder(received: Received[]) {
  const last = new Map<string, number>();
  const seen = new Set<string>();
  for (const m of received) {
    if (seen.has(m.id!)) continue; // a redelivered tail repeats older messages; order is judged on first arrival
    seen.add(m.id!);
    const seq = (m.body as { data: { seq: number } }).data.seq;
    const before = last.get(m.aggregateId!) ?? 0;
    expect(seq).toBe(before + 1);
    last.set(m.aggregateId!, seq);
  }
}

async function writeAll(
  prefix: string,
  rows: number,
  seed: number,
  extra: { deleteShare?: number; rollbackEvery?: number } = {},
) {
  const parts = await Promise.all(
    SERVICES.map((s, i) =>
      writeOutbox(env.serviceUrl(s), {
        rows,
        prefix: `${prefix}${s}`,
        maxTxnSize: 25,
        aggregates: 7,
        random: seeded(seed + i),
        ...extra,
      }),
    ),
  );
  return parts.flat();
}

describe('cdc relay', () => {
  it('delivers every committed outbox insert of three databases once, in per-aggregate order, and nothing else', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const written = await writeAll('a-', 400, 1, { deleteShare: 0.3, rollbackEvery: 5 });
    await waitUntil(() => new Set(mine(sink.messages, 'a-').map((m) => m.id)).size >= written.length, {
      message: 'all rows delivered',
    });
    const got = mine(sink.messages, 'a-');
    expectAllOnce(got, written);
    expect(got).toHaveLength(written.length); // no duplicates without a crash
    expectPerAggregateOrder(got);
    const sample = got[0]!;
    expect(sample.routingKey).toBe('test.Tested');
    expect(sample.type).toBe('Tested');
    expect(sample.correlationId).toBe(sample.aggregateId);
    expect(sample.headers).toMatchObject({
      correlationId: sample.aggregateId,
      causationId: null,
      [HEADER.aggregateType]: 'test',
    });
    expect(SERVICES.every((s) => got.some((m) => m.source === s))).toBe(true);
    await sink.close();
  });

  it('keeps an outbox row that cannot be an event in the invalid queue and goes on', async () => {
    const invalid = await collect(env.rabbitUrl, env.exchange, { queue: topologyNames(env.exchange).invalidQueue });
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const c = new pg.Client({ connectionString: env.serviceUrl('order') });
    await c.connect();
    await c.query(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'test', 'inv-1', 'no spaces allowed', '{"version":1}', '{}')`,
    );
    await c.end();
    const after = await writeAll('inv-', 5, 7);
    await waitUntil(() => mine(sink.messages, 'inv-').length >= after.length, {
      message: 'rows after the invalid one',
    });
    const bad = await waitUntil(
      () => invalid.messages.find((m) => (m.body as { row?: { aggregateid?: string } }).row?.aggregateid === 'inv-1'),
      { message: 'invalid row kept' },
    );
    expect(bad.headers[HEADER.invalidReason]).toBe('type is missing or not a routing word');
    expectAllOnce(mine(sink.messages, 'inv-'), after);
    await invalid.close();
    await sink.close();
  });

  /** Insert raw outbox rows (SQL values) in one transaction each, as the superuser. */
  async function insertRaw(rows: string[]) {
    const c = new pg.Client({ connectionString: env.adminUrl('order') });
    await c.connect();
    try {
      for (const r of rows)
        await c.query(
          `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers, created_at) VALUES ${r}`,
        );
    } finally {
      await c.end();
    }
  }
  const invalidOf = (invalid: { messages: Received[] }, aggregateId: string) =>
    invalid.messages.find((m) => (m.body as { row?: { aggregateid?: string } }).row?.aggregateid === aggregateId);

  it('a row the AMQP encoder or the broker cannot take goes to the invalid queue with its reason and the stream goes on', async () => {
    const invalid = await collect(env.rabbitUrl, env.exchange, { queue: topologyNames(env.exchange).invalidQueue });
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay({ RELAY_MAX_MESSAGE_BYTES: '65536' });
    await streamingAll(relay);
    const ok = `'{"version":1,"data":{}}'`;
    const rows: [string, string, RegExp][] = [
      [
        'enc-rk',
        `(gen_random_uuid(), '${'a'.repeat(100)}', 'enc-rk', '${'T'.repeat(199)}', ${ok}, '{"correlationId":"x"}', now())`,
        /routing key is over 255 bytes/,
      ],
      [
        'enc-corr',
        `(gen_random_uuid(), 'test', 'enc-corr', 'Tested', ${ok}, '{"correlationId":"${'é'.repeat(130)}"}', now())`,
        /correlationId is over 255 bytes/,
      ],
      [
        'enc-int',
        `(gen_random_uuid(), 'test', 'enc-int', 'Tested', ${ok}, '{"correlationId":"x","n":-100000000000000000000}', now())`,
        /does not fit an AMQP integer/,
      ],
      [
        'enc-bang',
        `(gen_random_uuid(), 'test', 'enc-bang', 'Tested', ${ok}, '{"correlationId":"x","t":{"!":"timestamp","value":-1}}', now())`,
        /'!' key/,
      ],
      [
        'enc-key',
        `(gen_random_uuid(), 'test', 'enc-key', 'Tested', ${ok}, '{"correlationId":"x","${'k'.repeat(256)}":1}', now())`,
        /key over 255 bytes/,
      ],
      [
        'enc-table',
        `(gen_random_uuid(), 'test', 'enc-table', 'Tested', ${ok}, '{"correlationId":"x","big":"${'x'.repeat(70_000)}"}', now())`,
        /headers encode to about/,
      ],
      [
        'enc-1969',
        `(gen_random_uuid(), 'test', 'enc-1969', 'Tested', ${ok}, '{"correlationId":"x"}', '1969-07-20T20:17:00Z')`,
        /before 1970/,
      ],
      [
        'enc-big',
        `(gen_random_uuid(), 'test', 'enc-big', 'Tested', '{"version":1,"data":"${'x'.repeat(100_000)}"}', '{"correlationId":"x"}', now())`,
        /over the broker's limit of 65536/,
      ],
    ];
    await insertRaw(rows.map(([, sql]) => sql));
    const after = await writeAll('enc-after-', 5, 81);
    await waitUntil(() => mine(sink.messages, 'enc-after-').length >= after.length, {
      message: 'rows after the bad ones',
      timeoutMs: 20_000,
    });
    for (const [aggregateId, , reason] of rows) {
      const kept = await waitUntil(() => invalidOf(invalid, aggregateId), {
        message: `${aggregateId} kept in the invalid queue`,
        timeoutMs: 10_000,
      });
      expect(String(kept.headers[HEADER.invalidReason])).toMatch(reason);
      expect(kept.source).toBe('order');
    }
    expectAllOnce(mine(sink.messages, 'enc-after-'), after);
    expect(mine(sink.messages, 'enc-')).toHaveLength(after.length); // none of the bad rows reached a consumer
    expect(relay.logs.filter((l) => l.msg === 'session ended with an error')).toEqual([]); // no restart loop
    await invalid.close();
    await sink.close();
  });

  it('publishes bodies that span several AMQP frames whole, byte for byte, with their headers', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    // Around one frame (131,072 bytes less 8 of framing), several frames, and multi-byte characters across the cuts.
    const sizes = [1, 131_000, 131_064, 131_065, 300_000, 1_000_000];
    const payloads = sizes.map((n, i) => ({ version: 1, data: { n: i, pad: 'aé€😀'.repeat(Math.ceil(n / 10)) } }));
    const c = new pg.Client({ connectionString: env.adminUrl('order') });
    await c.connect();
    try {
      for (const [i, payload] of payloads.entries())
        await c.query(
          `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers)
           VALUES (gen_random_uuid(), 'test', $1, 'Tested', $2, $3)`,
          [`frames-${i}`, JSON.stringify(payload), JSON.stringify({ correlationId: `frames-${i}`, n: i })],
        );
    } finally {
      await c.end();
    }
    await waitUntil(() => mine(sink.messages, 'frames-').length >= payloads.length, {
      message: 'every large row delivered',
      timeoutMs: 30_000,
    });
    const got = mine(sink.messages, 'frames-');
    expect(got).toHaveLength(payloads.length);
    for (const [i, payload] of payloads.entries()) {
      const m = got.find((x) => x.aggregateId === `frames-${i}`)!;
      expect(m.body).toEqual(payload);
      expect(m.headers).toMatchObject({ correlationId: `frames-${i}`, n: i });
      expect(m.correlationId).toBe(`frames-${i}`);
    }
    expect(got.some((m) => m.raw.content.length > 3 * 131_072)).toBe(true);
    await sink.close();
  });

  it('a message the broker returns never counts as stored: the session restarts and publishes it again', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange, { bindingKey: 'test.#' }); // nothing binds nobody.Listens
    const relay = startRelay();
    await streamingAll(relay);
    // Without the alternate exchange an unroutable mandatory event comes back (basic.return, then basic.ack).
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createChannel();
    await ch.deleteExchange(topologyNames(env.exchange).unroutableExchange);
    await conn.close();
    const c = new pg.Client({ connectionString: env.adminUrl('order') });
    await c.connect();
    const { rows } = await c.query<{ id: string }>(
      `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, headers) VALUES (gen_random_uuid(), 'nobody', 'ret-1', 'Listens', '{"version":1}', '{"correlationId":"ret-1"}') RETURNING id`,
    );
    await c.end();
    await relay.waitForLog((l) => l.msg === 'broker returned a message as unroutable; it counts as not stored', 20_000);
    // The next session re-declares the alternate exchange; the returned event then lands in the unroutable queue.
    const unroutable = await collect(env.rabbitUrl, env.exchange, {
      queue: topologyNames(env.exchange).unroutableQueue,
    });
    await waitUntil(() => unroutable.messages.some((m) => m.id === rows[0]!.id), {
      message: 'returned event stored after the restart',
      timeoutMs: 20_000,
    });
    expect(relay.logs.some((l) => l.msg === 'session ended with an error')).toBe(true);
    const after = await writeAll('ret-after-', 3, 91);
    await waitUntil(() => mine(sink.messages, 'ret-after-').length >= after.length, { message: 'stream goes on' });
    await unroutable.close();
    await sink.close();
  });

  it('an invalid-queue copy the broker cannot store fails the session instead of moving on; it is kept after the restart', async () => {
    const names = topologyNames(env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const conn = await amqp.connect(env.rabbitUrl);
    const ch = await conn.createChannel();
    await ch.deleteQueue(names.invalidQueue);
    await conn.close();
    await insertRaw([`(gen_random_uuid(), 'test', 'inv4-1', 'not a word', '{"version":1}', '{}', now())`]);
    await relay.waitForLog((l) => l.msg === 'broker returned a message as unroutable; it counts as not stored', 20_000);
    const invalid = await collect(env.rabbitUrl, env.exchange, { queue: names.invalidQueue });
    await waitUntil(() => invalidOf(invalid, 'inv4-1'), {
      message: 'invalid row kept after the restart',
      timeoutMs: 20_000,
    });
    await invalid.close();
  });

  it('loses nothing when killed with SIGKILL mid-stream; only the unacknowledged tail comes again', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const writing = writeAll('k-', 3000, 11);
    await waitUntil(() => mine(sink.messages, 'k-').length >= 1500, { message: 'half the stream', timeoutMs: 60_000 });
    await relay.kill('SIGKILL');
    // What the killed relay got into the broker must all have arrived before the split point is taken.
    await sink.drained();
    const beforeRestart = mine(sink.messages, 'k-').length;
    startRelay(); // the relay after the crash; killAll stops it after this file
    const written = await writing;
    await waitUntil(() => new Set(mine(sink.messages, 'k-').map((m) => m.id)).size >= written.length, {
      message: 'all rows after restart',
      timeoutMs: 60_000,
    });
    const got = mine(sink.messages, 'k-');
    expectAllOnce(got, written);
    expectPerAggregateOrder(got);
    // Duplicates are exactly a tail, in commit order, of what the killed relay published, per source: everything it
    // had published from the slot's position on. (Arrival order across aggregates is not commit order: a message
    // waits while an earlier one of its aggregate is unconfirmed, and others go on.)
    const commitOrder = new Map(written.map((w, i) => [w.id, i]));
    let duplicates = 0;
    for (const s of SERVICES) {
      const ofSource = (ms: Received[]) => ms.filter((m) => m.source === s).map((m) => m.id!);
      const first = ofSource(got.slice(0, beforeRestart));
      const firstSet = new Set(first);
      const repeated = new Set(ofSource(got.slice(beforeRestart)).filter((id) => firstSet.has(id)));
      duplicates += repeated.size;
      if (repeated.size === 0) continue;
      const from = Math.min(...[...repeated].map((id) => commitOrder.get(id)!));
      expect(first.filter((id) => commitOrder.get(id)! >= from).sort()).toEqual([...repeated].sort());
    }
    console.log(
      `relay SIGKILL: ${written.length} rows, ${beforeRestart} delivered before the kill, ${duplicates} redelivered (unacknowledged tail), 0 lost`,
    );
    await sink.close();
  });

  it('recovers by itself when its broker connections are forcibly closed mid-stream', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const writing = writeAll('c-', 1500, 21);
    await waitUntil(() => mine(sink.messages, 'c-').length >= 300, { message: 'stream under way', timeoutMs: 60_000 });
    expect(closeConnections(env.vhost, 'cdc-relay')).toBe(3);
    await waitUntil(() => mine(sink.messages, 'c-').length >= 1500, { message: 'stream goes on', timeoutMs: 60_000 });
    await waitUntil(() => closeConnections(env.vhost, 'cdc-relay') === 3, {
      message: 'second close',
      timeoutMs: 30_000,
    });
    const written = await writing;
    await waitUntil(() => new Set(mine(sink.messages, 'c-').map((m) => m.id)).size >= written.length, {
      message: 'all rows',
      timeoutMs: 60_000,
    });
    expectAllOnce(mine(sink.messages, 'c-'), written);
    expectPerAggregateOrder(mine(sink.messages, 'c-'));
    expect(relay.logs.filter((l) => l.msg === 'session ended with an error').length).toBeGreaterThanOrEqual(3);
    await sink.close();
  });

  it('never reads the outbox table: seq_scan and idx_scan do not move while it streams', async () => {
    const stats = async () => {
      const out: Record<string, { seq: number; idx: number }> = {};
      for (const s of SERVICES) {
        const c = new pg.Client({ connectionString: env.adminUrl(s) });
        await c.connect();
        const { rows } = await c.query<{ seq_scan: string; idx_scan: string | null }>(
          "SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'outbox'",
        );
        await c.end();
        out[s] = { seq: Number(rows[0]!.seq_scan), idx: Number(rows[0]!.idx_scan ?? 0) };
      }
      return out;
    };
    /** Statistics once every writer's backend flushed them: two reads a little apart agree. */
    const settled = () =>
      waitUntil(
        async () => {
          const a = await stats();
          await new Promise((r) => setTimeout(r, 300));
          const b = await stats();
          return JSON.stringify(a) === JSON.stringify(b) ? b : undefined;
        },
        { message: 'table statistics settled' },
      );
    const sink = await collect(env.rabbitUrl, env.exchange);
    // The rows are written first, then the relay streams them from the slot: whatever moves the counters from here
    // on is the relay.
    const relay = startRelay();
    await streamingAll(relay);
    expect((await relay.kill('SIGTERM')).code).toBe(0);
    const written = await Promise.all(
      SERVICES.map((s) => writeOutbox(env.serviceUrl(s), { rows: 300, prefix: `p-${s}`, maxTxnSize: 10 })),
    );
    const before = await settled();
    const again = startRelay();
    await streamingAll(again);
    await waitUntil(() => mine(sink.messages, 'p-').length >= written.flat().length, { message: 'rows delivered' });
    // A clean stop ends the relay's backends, which flushes their statistics.
    expect((await again.kill('SIGTERM')).code).toBe(0);
    expect(await settled()).toEqual(before);
    // Control: a query on the table does move the counter, so the check above can fail.
    const c = new pg.Client({ connectionString: env.adminUrl('order') });
    await c.connect();
    await c.query('SELECT count(*) FROM outbox');
    await c.end();
    await waitUntil(async () => (await stats()).order!.seq > before.order!.seq, { message: 'control scan counted' });
    await sink.close();
  });

  it('runs as active and standby: the standby takes over within seconds when the active one dies', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const a = startRelay();
    await streamingAll(a);
    const b = startRelay();
    await b.waitForLog((l) => l.msg === 'slot is streamed by another relay; standing by');
    expect(b.logs.some((l) => l.msg === 'streaming')).toBe(false);
    const slotLsn = async () => {
      const c = new pg.Client({ connectionString: env.adminUrl('order') });
      await c.connect();
      try {
        const { rows } = await c.query<{ l: string }>(
          'SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1',
          [`${env.slotPrefix}_order`],
        );
        return parseLsn(rows[0]!.l);
      } finally {
        await c.end();
      }
    };
    const beforeBatch = await slotLsn();
    const first = await writeAll('s-', 200, 31);
    await waitUntil(() => mine(sink.messages, 's-').length >= first.length, {
      message: 'first batch via the active relay',
    });
    // The active relay acknowledged (part of) the batch: the slot moved after the standby last read it.
    const moved = await waitUntil(async () => ((await slotLsn()) > beforeBatch ? slotLsn() : undefined), {
      message: 'slot moved by the active relay',
    });
    await a.kill('SIGKILL');
    const killedAt = Date.now();
    await streamingAll(b);
    // The standby reports the slot's position when it became active, not the one it read before waiting.
    const from = b.logs.find((l) => l.msg === 'streaming' && l.source === 'order')!.from;
    expect(parseLsn(String(from))).toBeGreaterThanOrEqual(moved);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(10_000);
    const second = await writeAll('s2-', 200, 41);
    await waitUntil(() => mine(sink.messages, 's2-').length >= second.length, {
      message: 'second batch via the standby',
    });
    expectAllOnce(mine(sink.messages, 's-'), first);
    expectAllOnce(mine(sink.messages, 's2-'), second);
    console.log(`relay standby took over in ${takeoverMs} ms`);
    await sink.close();
  });

  it('on SIGTERM waits for confirms, acknowledges and exits 0; a restart redelivers nothing', async () => {
    const sink = await collect(env.rabbitUrl, env.exchange);
    const relay = startRelay();
    await streamingAll(relay);
    const written = await writeAll('t-', 300, 51);
    await waitUntil(() => mine(sink.messages, 't-').length >= written.length, { message: 'rows delivered' });
    expect((await relay.kill('SIGTERM')).code).toBe(0);
    const again = startRelay();
    await streamingAll(again);
    const marker = await writeAll('t2-', 3, 61);
    await waitUntil(() => mine(sink.messages, 't2-').length >= marker.length, { message: 'marker rows' });
    expect(mine(sink.messages, 't-')).toHaveLength(written.length);
    await sink.close();
  });

  it('exposes health, readiness and Prometheus metrics', async () => {
    const relay = startRelay({ RELAY_PORT: '18310' });
    await streamingAll(relay);
    const health = await fetch('http://127.0.0.1:18310/healthz');
    expect(health.status).toBe(200);
    const ready = await waitUntil(async () => {
      const r = await fetch('http://127.0.0.1:18310/readyz');
      return r.status === 200 ? r.json() : undefined;
    });
    expect(ready).toMatchObject({
      status: 'ready',
      checks: { 'source:order': true, 'source:inventory': true, 'source:payment': true },
    });
    // The first scrape already has every slot gauge with a value: each awaits the scrape's read of the slot rows
    // (a gauge that did not would show nothing here, and later the previous scrape's figures).
    const first = await (await fetch('http://127.0.0.1:18310/metrics')).text();
    for (const name of ['relay_replication_lag_bytes', 'relay_slot_retained_wal_bytes', 'relay_slot_safe_wal_bytes']) {
      expect(first).toMatch(new RegExp(`${name}\\{source="order",slot="[a-z0-9_]+",component="cdc-relay"\\} -?\\d+`));
    }
    const wrote = Date.now();
    await writeAll('m-', 10, 71);
    const text = await waitUntil(async () => {
      const t = await (await fetch('http://127.0.0.1:18310/metrics')).text();
      return /relay_messages_published_total\{source="order",component="cdc-relay"\} ([1-9]\d*)/.test(t)
        ? t
        : undefined;
    });
    // The time of the last confirm comes to one of the rows just written (rows of the test before, sent again at the
    // start, may have set it earlier), and is never in the future.
    const last = await waitUntil(
      async () => {
        const t = await (await fetch('http://127.0.0.1:18310/metrics')).text();
        const at = 1000 * Number(/relay_last_published_timestamp_seconds\{source="order",[^}]*\} (\S+)/.exec(t)?.[1]);
        return at >= wrote ? at : undefined;
      },
      { message: 'the time of a confirm of the rows just written' },
    );
    expect(last).toBeLessThanOrEqual(Date.now());
    for (const name of [
      'relay_publish_confirm_seconds_bucket',
      'relay_replication_lag_bytes',
      'relay_reconnects_total',
      'relay_nacks_total',
      'relay_slot_retained_wal_bytes',
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/relay_replication_lag_bytes\{source="payment",slot="[a-z0-9_]+",component="cdc-relay"\} \d+/);
    // The lag in seconds, per streamed source: just after a small burst the relay is at most a few seconds behind.
    for (const source of ['order', 'inventory', 'payment']) {
      const seconds = new RegExp(
        `relay_replication_lag_seconds\\{source="${source}",component="cdc-relay"\\} (\\S+)`,
      ).exec(text)?.[1];
      expect(seconds).toBeDefined();
      expect(Number(seconds)).toBeGreaterThanOrEqual(0);
      expect(Number(seconds)).toBeLessThan(10);
    }
  });
});

export type { ServiceName };
