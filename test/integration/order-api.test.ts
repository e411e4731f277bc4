/**
 * The order API alone (no relay, no other service): listing, reading, following and placing orders against real
 * PostgreSQL and RabbitMQ. Orders stay PENDING unless a test publishes the event that moves them on.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import amqp from 'amqplib';
import pg from 'pg';
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { createLogger } from '@saga/common/runtime/logger';
import type { SqlClient } from '@saga/common/db/sql';
import { decide, evolve, historyEntry, published, type Order } from '../../services/order/src/domain/order';
import { insertOrders, LIST_ORDERS_SQL } from '../../services/order/src/db/order-repository';
import { createOrderPlacement, type Placement } from '../../services/order/src/http/order-placement';
import { createTestEnv, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { as, uniq } from '../support/saga';
import { mintDevToken } from '@saga/common/http/dev-token';
import { startProcess } from '../support/process';
import { serviceEnv } from '../support/stack';
import { http, startService, type ServiceProc } from '../support/stack';
import { waitUntil } from '../support/wait';
import { startTcpProxyFor, throughProxy } from '../support/tcp-proxy';
import { settleWithin } from '@saga/common/runtime/settle';
import { createOrderNotifier } from '../../services/order/src/http/order-notifier';

let env: TestEnv;
let order: ServiceProc;
let admin: pg.Client;

beforeAll(async () => {
  env = await createTestEnv('oapi');
  order = await startService(env, 'order');
  admin = new pg.Client({ connectionString: env.adminUrl('order') });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await order?.proc.kill('SIGTERM');
  await killAll();
  await env?.close();
});

type Page = { orders: { orderId: string; customerId: string }[]; next: string | null };
const items = [{ sku: 'sku-1', quantity: 1 }];

async function place(customerId: string, headers: Record<string, string> = {}) {
  return http<{ orderId: string; status: string }>(
    'POST',
    `${order.url}/orders`,
    { customerId, items },
    as(customerId, headers),
  );
}

/** Publish an event to the saga's exchange as the relay would, from the outbox row that carried it. */
async function publish(type: string, aggregateType: string, data: Record<string, unknown> & { orderId: string }) {
  const m = encodeOutboxRow(
    {
      id: randomUUID(),
      aggregatetype: aggregateType,
      aggregateid: data.orderId,
      type,
      payload: { version: 1, data },
      headers: { correlationId: data.orderId, causationId: null },
    },
    aggregateType,
    'outbox',
  );
  if (!m.ok) throw new Error(m.reason);
  const conn = await amqp.connect(env.rabbitUrl);
  const ch = await conn.createConfirmChannel();
  ch.publish(env.exchange, m.routingKey, m.content, m.options);
  await ch.waitForConfirms();
  await conn.close();
}

describe('listing orders', () => {
  it('serves every kind of page from an index, without sorting the orders it matches', async () => {
    const customer = uniq('cust');
    const placed = await place(customer);
    expect(placed.status).toBe(202);
    // Sorting discouraged: a plan sorts only when no index gives the listing's order (a sort of every order the
    // page's filters match, on each page).
    const pages: [string | null, string | null, string | null][] = [
      [null, null, null],
      ['PENDING', null, null],
      [null, customer, null],
      ['PENDING', customer, placed.body.orderId],
    ];
    // EXECUTE takes no bind parameters: the values go in as literals.
    const lit = (v: string | null) => (v === null ? 'NULL' : admin.escapeLiteral(v));
    // A prepared statement outlives its transaction: it is deallocated at the end.
    await admin.query(`PREPARE list_page(text, text, uuid, int) AS ${LIST_ORDERS_SQL}`);
    await admin.query('BEGIN');
    try {
      await admin.query('SET LOCAL enable_sort = off');
      for (const [status, cust, after] of pages) {
        const plan = await admin.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN EXECUTE list_page(${lit(status)}, ${lit(cust)}, ${lit(after)}, 20)`,
        );
        const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
        expect({ page: [status, cust, after], sorts: /Sort/.test(text) }).toEqual({
          page: [status, cust, after],
          sorts: false,
        });
      }
    } finally {
      await admin.query('ROLLBACK');
      await admin.query('DEALLOCATE list_page');
    }
  });

  it('lists every order exactly once when pages are walked over equal creation times', async () => {
    const customer = uniq('cust');
    // Group commit gives every order of a group the same created_at (its transaction's start), microseconds included.
    await admin.query(
      `INSERT INTO orders (id, customer_id, status, created_at, updated_at)
       SELECT gen_random_uuid(), $1, 'PENDING', '2030-01-01T00:00:00.123456Z', '2030-01-01T00:00:00.123456Z'
       FROM generate_series(1, 60)`,
      [customer],
    );
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const r: { status: number; body: Page } = await http<Page>(
        'GET',
        `${order.url}/orders?limit=20${after ? `&after=${after}` : ''}`,
        undefined,
        as(customer),
      );
      expect(r.status).toBe(200);
      seen.push(...r.body.orders.map((o) => o.orderId));
      after = r.body.next;
      if (!after) break;
    }
    expect(seen).toHaveLength(60);
    expect(new Set(seen).size).toBe(60);
  });
});

describe('reading an order', () => {
  it('answers a status that agrees with the history it answers with', async () => {
    const customer = uniq('cust');
    const placed = await place(customer);
    expect(placed.status).toBe(202);
    const id = placed.body.orderId;
    // A writer holds order_items while it cancels the order: a read of the order that starts before the writer
    // commits and ends after it must see either none of the change or all of it.
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE');
    const read = http<{ status: string; history: { type: string }[] }>(
      'GET',
      `${order.url}/orders/${id}`,
      undefined,
      as(customer),
    );
    await waitUntil(async () => (await lockWaiters()) > 0, { message: 'the read waits for the writer' });
    await admin.query("UPDATE orders SET status = 'CANCELLED', reason = 'OUT_OF_STOCK' WHERE id = $1", [id]);
    await admin.query("INSERT INTO order_history (order_id, type) VALUES ($1, 'OrderCancelled')", [id]);
    await admin.query('COMMIT');
    const view = (await read).body;
    const cancelled = view.history.some((h) => h.type === 'OrderCancelled');
    expect({ status: view.status, cancelled }).toEqual({ status: cancelled ? 'CANCELLED' : 'PENDING', cancelled });
  });
});

async function lockWaiters(): Promise<number> {
  const c = new pg.Client({ connectionString: env.adminUrl('order') });
  await c.connect();
  try {
    const { rows } = await c.query(
      "SELECT 1 FROM pg_stat_activity WHERE usename = 'order_svc' AND wait_event_type = 'Lock'",
    );
    return rows.length;
  } finally {
    await c.end();
  }
}

describe('following an order', () => {
  it('ends the stream of an order named in upper case once the order is final', async () => {
    const customer = uniq('cust');
    const placed = await place(customer);
    const id = placed.body.orderId;
    const abort = AbortSignal.timeout(15_000);
    const res = await fetch(`${order.url}/orders/${id.toUpperCase()}/events`, { signal: abort, headers: as(customer) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
      }
    };
    await readUntil(/event: OrderPlaced\n/);
    await publish('StockRejected', 'inventory', { orderId: id, reason: 'OUT_OF_STOCK', sku: 'sku-1' });
    await readUntil(/event: end\n/);
    expect([...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])).toEqual([
      'OrderPlaced',
      'StockRejected',
      'OrderCancelled',
      'end',
    ]);
  });
});

describe('order streams', () => {
  const watches = async (orderId: string) =>
    Number((await admin.query('SELECT count(*) AS n FROM order_watch WHERE order_id = $1', [orderId])).rows[0].n);
  const open = (base: string, customer: string, id: string, signal?: AbortSignal) =>
    fetch(`${base}/orders/${id}/events`, { headers: as(customer), signal });

  it('shares one watch among the streams of an order, and drops it when the last one closes', async () => {
    const customer = uniq('cust');
    const id = (await place(customer)).body.orderId;
    const aborts = [new AbortController(), new AbortController(), new AbortController()];
    const streams = await Promise.all(aborts.map((a) => open(order.url, customer, id, a.signal)));
    expect(streams.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(await watches(id)).toBe(1);
    for (const a of aborts) a.abort();
    await waitUntil(async () => (await watches(id)) === 0, { message: 'watch dropped' });
  });

  it('leaves nothing behind when the client leaves while its stream is being set up', async () => {
    const limited = await startService(env, 'order', { SSE_MAX_PER_CALLER: '1' });
    try {
      const customer = uniq('cust');
      const id = (await http<{ orderId: string }>('POST', `${limited.url}/orders`, { items }, as(customer))).body
        .orderId;
      const abort = new AbortController();
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE');
      const leaving = open(limited.url, customer, id, abort.signal).catch(() => undefined);
      await waitUntil(async () => (await lockWaiters()) > 0, { message: 'the stream setup waits' });
      abort.abort();
      await leaving;
      await admin.query('COMMIT');
      await waitUntil(async () => (await watches(id)) === 0, { message: 'watch dropped' });
      // Its place is free again: the caller may open its one stream.
      const again = new AbortController();
      expect((await open(limited.url, customer, id, again.signal)).status).toBe(200);
      again.abort();
    } finally {
      await admin.query('ROLLBACK').catch(() => undefined);
      await limited.proc.kill('SIGTERM');
    }
  });

  it('ends the stream when the order cannot be read again after a change', async () => {
    const customer = uniq('cust');
    const id = (await place(customer)).body.orderId;
    const res = await open(order.url, customer, id, AbortSignal.timeout(15_000));
    const reader = res.body!.getReader();
    await reader.read();
    await admin.query('REVOKE SELECT ON order_history FROM order_svc');
    try {
      await publish('StockRejected', 'inventory', { orderId: id, reason: 'OUT_OF_STOCK', sku: 'sku-1' });
      for (;;) if ((await reader.read()).done) break; // resolves only when the server ends the stream
    } finally {
      await admin.query('GRANT SELECT ON order_history TO order_svc');
    }
    await waitUntil(async () => (await watches(id)) === 0, { message: 'watch dropped' });
  });

  it('refuses streams beyond the per-caller limit with 429 and beyond the replica limit with 503', async () => {
    const limited = await startService(env, 'order', { SSE_MAX_PER_CALLER: '2', SSE_MAX_STREAMS: '3' });
    const aborts: AbortController[] = [];
    try {
      const [a, b] = [uniq('cust'), uniq('cust')];
      const idOf = async (c: string) =>
        (await http<{ orderId: string }>('POST', `${limited.url}/orders`, { items }, as(c))).body.orderId;
      const [ida, idb] = [await idOf(a), await idOf(b)];
      const openOne = (c: string, id: string) => {
        const ab = new AbortController();
        aborts.push(ab);
        return open(limited.url, c, id, ab.signal);
      };
      expect((await openOne(a, ida)).status).toBe(200);
      expect((await openOne(a, ida)).status).toBe(200);
      const third = await openOne(a, ida);
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBeTruthy();
      expect((await openOne(b, idb)).status).toBe(200);
      const full = await openOne(b, idb);
      expect(full.status).toBe(503);
      expect(full.headers.get('retry-after')).toBeTruthy();
    } finally {
      for (const ab of aborts) ab.abort();
      await limited.proc.kill('SIGTERM');
    }
  });
});

describe('placing orders', () => {
  it('keeps Idempotency-Keys of different customers apart', async () => {
    const [a, b] = [uniq('cust'), uniq('cust')];
    const first = await place(a, { 'Idempotency-Key': '1' });
    const second = await place(b, { 'Idempotency-Key': '1' });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.body.orderId).not.toBe(first.body.orderId);
    const again = await place(b, { 'Idempotency-Key': '1' });
    expect(again.body.orderId).toBe(second.body.orderId);
  });
});

/** What POST /orders queues for the group commit. */
function placement(customerId: string, key?: string, hash = 'h'): Placement {
  const events = decide(undefined, { type: 'PlaceOrder', data: { orderId: randomUUID(), customerId, items } });
  return {
    order: events.reduce<Order | undefined>(evolve, undefined)!,
    history: events.map(historyEntry),
    events: published(events),
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ...(key ? { idempotency: { key, hash } } : {}),
  };
}

describe('callers', () => {
  const list = (headers: Record<string, string>) => http<Page>('GET', `${order.url}/orders`, undefined, headers);

  it('refuses a request without a valid bearer token with 401', async () => {
    expect((await list({})).status).toBe(401);
    expect((await list({ authorization: 'Bearer not-a-jwt' })).status).toBe(401);
    expect((await list({ authorization: `Bearer ${mintDevToken('c1', { secret: 'x'.repeat(40) })}` })).status).toBe(
      401,
    );
    expect((await list({ authorization: `Bearer ${mintDevToken('c1', { audience: 'someone-else' })}` })).status).toBe(
      401,
    );
    expect(
      (await list({ authorization: `Bearer ${mintDevToken('c1', { now: Date.now() - 7_200_000 })}` })).status,
    ).toBe(401);
    const res = await fetch(`${order.url}/orders`);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  it("places orders for the token's customer only, and shows each customer only their own", async () => {
    const [a, b] = [uniq('cust'), uniq('cust')];
    const other = await http('POST', `${order.url}/orders`, { customerId: b, items }, as(a));
    expect(other.status).toBe(403);
    const mine = await http<{ orderId: string }>('POST', `${order.url}/orders`, { items }, as(a));
    expect(mine.status).toBe(202);
    const id = mine.body.orderId;
    expect((await http('GET', `${order.url}/orders/${id}`, undefined, as(a))).status).toBe(200);
    expect((await http('GET', `${order.url}/orders/${id}`, undefined, as(b))).status).toBe(404);
    expect((await fetch(`${order.url}/orders/${id}/events`, { headers: as(b) })).status).toBe(404);
    expect((await list(as(a))).body.orders.map((o) => o.orderId)).toEqual([id]);
    expect((await list(as(b))).body.orders).toEqual([]);
  });

  it('answers 429 with Retry-After once a caller spends its burst, and other callers go on', async () => {
    const limited = await startService(env, 'order', { ORDER_RATE_BURST: '3', ORDER_RATE_PER_SECOND: '0.1' });
    try {
      const [a, b] = [uniq('cust'), uniq('cust')];
      const post = (c: string) =>
        fetch(`${limited.url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...as(c) },
          body: JSON.stringify({ items }),
        });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await post(a)).status);
      expect(statuses).toEqual([202, 202, 202, 429]);
      const refused = await post(a);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await post(b)).status).toBe(202);
    } finally {
      await limited.proc.kill('SIGTERM');
    }
  });

  it('refuses to start in production without a real token issuer', async () => {
    const p = startProcess('services/order/src/main.ts', { ...serviceEnv(env, 'order'), NODE_ENV: 'production' });
    const { code } = await p.exited;
    expect(code).not.toBe(0);
    expect(p.output()).toContain('AUTH_ISSUER');
  });
});

describe('connections', () => {
  it('drops a client that trickles its headers, and refuses connections beyond the cap', async () => {
    const limited = await startService(env, 'order', {
      HTTP_HEADERS_TIMEOUT_MS: '1000',
      HTTP_REQUEST_TIMEOUT_MS: '2000',
      HTTP_MAX_CONNECTIONS: '2',
    });
    const sockets: net.Socket[] = [];
    const connect = () =>
      new Promise<{ socket: net.Socket; closed: Promise<string> }>((resolve) => {
        const socket = net.connect(limited.port, '127.0.0.1', () => resolve({ socket, closed }));
        let got = '';
        socket.on('data', (d) => (got += d.toString()));
        socket.on('error', () => undefined);
        const closed = new Promise<string>((r) => socket.on('close', () => r(got)));
        sockets.push(socket);
      });
    try {
      const slow = await connect();
      slow.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // never finishes its headers
      expect(await slow.closed).toMatch(/^HTTP\/1\.1 408/);
      const [a, b] = [await connect(), await connect()];
      const third = await connect();
      expect(await third.closed).toBe(''); // closed by the server with no answer
      a.socket.destroy();
      b.socket.destroy();
    } finally {
      for (const s of sockets) s.destroy();
      await limited.proc.kill('SIGTERM');
    }
  });
});

describe('placing orders in groups', () => {
  let pool: pg.Pool;
  const log = createLogger('order-api-test', 'silent');
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: env.serviceUrl('order'), max: 4 });
  });
  afterAll(async () => {
    await pool?.end();
  });
  const countOf = async (sql: string, values: unknown[]) =>
    Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${sql}`, values)).rows[0]!.n);

  it('answers a committed order as placed when the connection drops after the commit', async () => {
    let drops = 1;
    // The statement commits, then the client hears nothing more: as when the connection breaks at that moment.
    const flaky: SqlClient = {
      query: (async (q: { name?: string }, values?: unknown[]) => {
        const result = await pool.query(q as pg.QueryConfig, values);
        if (q.name === 'order.insert' && drops-- > 0) throw new Error('Connection terminated unexpectedly');
        return result;
      }) as SqlClient['query'],
    };
    const place = createOrderPlacement(flaky, log, { retryDelayMs: 10 });
    const customer = uniq('cust');
    const group = [placement(customer), placement(customer, 'k1'), placement(customer)];
    const answers = await Promise.all(group.map((p) => place.place(p)));
    expect(answers).toEqual(group.map((p) => ({ orderId: p.order.id, status: 'PENDING', created: true })));
    expect(await countOf('orders WHERE customer_id = $1', [customer])).toBe(3);
    expect(await countOf("outbox WHERE payload->'data'->>'customerId' = $1", [customer])).toBe(3);
  });

  it('writes a group in one statement when some of its orders replay an Idempotency-Key', async () => {
    const customer = uniq('cust');
    const first = await createOrderPlacement(pool, log).place(placement(customer, 'k1', 'same'));
    let inserts = 0;
    const counting: SqlClient = {
      query: ((q: { name?: string }, values?: unknown[]) => {
        if (q.name === 'order.insert') inserts++;
        return pool.query(q as pg.QueryConfig, values);
      }) as SqlClient['query'],
    };
    const place = createOrderPlacement(counting, log, { maxInFlight: 1 });
    const group = [placement(customer), placement(customer, 'k1', 'same'), placement(customer, 'k1', 'other')];
    const settled = await Promise.allSettled(group.map((p) => place.place(p)));
    // The first goes alone (nothing was in flight), the other two together.
    expect(inserts).toBe(2);
    expect(settled[0]).toMatchObject({ status: 'fulfilled', value: { created: true } });
    expect(settled[1]).toMatchObject({ status: 'fulfilled', value: { orderId: first.orderId, created: false } });
    expect(settled[2]).toMatchObject({ status: 'rejected', reason: { status: 409 } });
    expect(await countOf('orders WHERE customer_id = $1', [customer])).toBe(2);
  });

  it('never deadlocks two groups that hold the same keys in opposite order', async () => {
    for (let round = 0; round < 20; round++) {
      const customer = uniq('cust');
      const [a, b] = [placement(customer, 'a'), placement(customer, 'b')];
      const [a2, b2] = [placement(customer, 'a'), placement(customer, 'b')];
      const outbox = (ps: Placement[]) =>
        ps.map((p) => ({ events: p.events, meta: { correlationId: p.order.id, causationId: null } }));
      const results = await Promise.allSettled([
        insertOrders(pool, [a, b], outbox([a, b])),
        insertOrders(pool, [b2, a2], outbox([b2, a2])),
      ]);
      // A deadlock would fail one of the two with SQLSTATE 40P01 after deadlock_timeout.
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      expect(await countOf('orders WHERE customer_id = $1', [customer])).toBe(2);
    }
  });
});

describe('admission by the saga backlog', () => {
  const pendingNow = async () =>
    Number(
      (
        await admin.query(
          `SELECT count(*) AS n FROM orders WHERE status = 'PENDING' AND created_at > now() - interval '600 seconds'`,
        )
      ).rows[0].n,
    );

  it('refuses new orders with 503 and Retry-After while too many are in progress, and admits them once they finish', async () => {
    // Orders stay PENDING here (no inventory or payment runs): a bound three above today's backlog is reached by
    // this test's own orders.
    const bound = (await pendingNow()) + 3;
    const shop = await startService(env, 'order', { ORDER_PENDING_MAX: String(bound) });
    try {
      const customer = uniq('cust');
      const post = async () => {
        const res = await fetch(`${shop.url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...as(customer) },
          body: JSON.stringify({ items }),
        });
        return {
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          body: (await res.json()) as { orderId?: string; type?: string },
        };
      };
      const accepted: string[] = [];
      let refused: Awaited<ReturnType<typeof post>> | undefined;
      await waitUntil(
        async () => {
          const r = await post();
          if (r.status === 202) accepted.push(r.body.orderId!);
          else refused = r;
          return refused !== undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50, message: 'a POST refused for the backlog' },
      );
      expect(refused!.status).toBe(503);
      expect(refused!.body.type).toBe('urn:saga:problem:overloaded');
      expect(Number(refused!.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(accepted.length).toBeGreaterThanOrEqual(3);
      // A refused order wrote nothing; every accepted one is there.
      const written = await admin.query('SELECT count(*)::int AS n FROM orders WHERE customer_id = $1', [customer]);
      expect(written.rows[0].n).toBe(accepted.length);

      // The accepted orders finish (cancelled here): the backlog is back under the bound, and orders are admitted.
      for (const id of accepted)
        await publish('StockRejected', 'inventory', { orderId: id, reason: 'OUT_OF_STOCK', sku: 'sku-1' });
      await waitUntil(async () => (await post()).status === 202, {
        timeoutMs: 30_000,
        intervalMs: 100,
        message: 'a POST admitted after the backlog finished',
      });
    } finally {
      await shop.proc.kill('SIGTERM');
    }
  });
});

describe("the order notifier's LISTEN connection", () => {
  it('a stop on a silent database link (no FIN, no RST) ends within its bound instead of waiting for TCP', async () => {
    const proxy = await startTcpProxyFor(env.serviceUrl('order'));
    const pool = new pg.Pool({ connectionString: env.serviceUrl('order'), max: 2 });
    // The suite's order service listens on this database too: wait for one LISTEN connection more than it has.
    const listening = async () =>
      (
        await pool.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'order notifier' AND query LIKE 'LISTEN%'",
        )
      ).rows[0]!.n;
    const before = await listening();
    const notifier = createOrderNotifier(
      throughProxy(env.serviceUrl('order'), proxy),
      pool,
      createLogger('test', 'silent'),
    );
    try {
      await waitUntil(async () => (await listening()) > before, { message: 'the notifier listening' });
      proxy.blackhole(); // the server never answers the Terminate, nor closes the socket
      await settleWithin(notifier.stop(), 10_000, 'notifier stop on a silent link');
    } finally {
      await pool.end();
      await proxy.close();
    }
  });
});
