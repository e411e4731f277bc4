import { Writable } from 'node:stream';
import { Router } from 'express';
import pino from 'pino';
import { Registry } from 'prom-client';
import { createHttpApp, finishHttpApp } from '../../src/http/app';
import { listen } from '../../src/runtime/ops';
import { childContext, formatTraceparent } from '../../src/runtime/trace-context';

/** An app made by createHttpApp with three routes, whose logger writes JSON lines into `lines`. */
async function serve() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const registry = new Registry();
  const app = createHttpApp(pino({ level: 'info' }, sink), registry);
  const r = Router();
  r.post('/things/:id', (req, res) => {
    req.log.info({ id: req.params.id }, 'thing posted');
    res.status(202).json({ requestId: req.requestId, traceparent: req.traceparent });
  });
  r.get('/quiet', (req, res) => {
    res.json({ requestId: req.requestId });
  });
  r.get('/replaced', (req, res) => {
    req.log = req.log.child({ customerId: 'c-1' });
    req.log.info('with the caller');
    res.json({});
  });
  app.use(r);
  finishHttpApp(app);
  const h = await listen(app, 0, '127.0.0.1');
  const base = `http://127.0.0.1:${(h.server.address() as { port: number }).port}`;
  return { base, lines, registry, close: h.close };
}

describe('the request context of every service app', () => {
  let s: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    s = await serve();
  });
  afterAll(() => s.close());

  it('keeps a valid x-request-id and answers it; replaces an invalid one with a new id', async () => {
    const kept = await fetch(`${s.base}/quiet`, { headers: { 'x-request-id': 'abc.123:x-y' } });
    expect(kept.headers.get('x-request-id')).toBe('abc.123:x-y');
    expect(((await kept.json()) as { requestId: string }).requestId).toBe('abc.123:x-y');

    const replaced = await fetch(`${s.base}/quiet`, { headers: { 'x-request-id': 'no spaces allowed' } });
    const id = replaced.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(((await replaced.json()) as { requestId: string }).requestId).toBe(id);
  });

  it("logs with the request's id and its span, in the caller's trace", async () => {
    const caller = childContext();
    const res = await fetch(`${s.base}/things/t-1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: formatTraceparent(caller), 'x-request-id': 'req-1' },
      body: '{}',
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { traceparent: string };
    const [, traceId, spanId] = body.traceparent.split('-');
    expect(traceId).toBe(caller.traceId);
    expect(spanId).not.toBe(caller.spanId);
    const line = s.lines.find((l) => l.msg === 'thing posted');
    expect(line).toMatchObject({ id: 't-1', requestId: 'req-1', trace_id: caller.traceId, span_id: spanId });
  });

  it("gives each request its own logger, and a handler's replacement stays with its request", async () => {
    await Promise.all([
      fetch(`${s.base}/replaced`, { headers: { 'x-request-id': 'req-a' } }),
      fetch(`${s.base}/things/t-2`, { method: 'POST', headers: { 'x-request-id': 'req-b' } }),
    ]);
    expect(s.lines.find((l) => l.msg === 'with the caller')).toMatchObject({ requestId: 'req-a', customerId: 'c-1' });
    const other = s.lines.find((l) => l.msg === 'thing posted' && l.requestId === 'req-b');
    expect(other).toBeDefined();
    expect(other).not.toHaveProperty('customerId');
  });

  it('times every request by method, route pattern and status, unmatched ones apart', async () => {
    await fetch(`${s.base}/things/t-3`, { method: 'POST' });
    await fetch(`${s.base}/nowhere`);
    const counts = new Map(
      (await s.registry.getSingleMetric('http_request_duration_seconds')!.get()).values
        .filter((v) => (v as { metricName?: string }).metricName === 'http_request_duration_seconds_count')
        .map((v) => [`${v.labels.method} ${v.labels.route} ${v.labels.status}`, v.value]),
    );
    expect(counts.get('POST /things/:id 202')).toBeGreaterThanOrEqual(1);
    expect(counts.get('GET unmatched 404')).toBe(1);
  });
});
