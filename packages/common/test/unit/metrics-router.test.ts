import express from 'express';
import { Counter, Histogram } from 'prom-client';
import { createMetricsRegistry, createMetricsRouter, listen } from '../../src/runtime/ops';

describe('the /metrics route', () => {
  const registry = createMetricsRegistry('test');
  const published = new Counter({
    name: 'relay_messages_published_total',
    help: 'published',
    labelNames: ['source'],
    registers: [registry],
  });
  const confirm = new Histogram({ name: 'confirm_seconds', help: 'confirm', registers: [registry] });
  let base = '';
  let close: () => Promise<void> = async () => undefined;

  beforeAll(async () => {
    const app = express();
    app.use(createMetricsRouter(registry));
    const h = await listen(app, 0, '127.0.0.1');
    close = h.close;
    base = `http://127.0.0.1:${(h.server.address() as { port: number }).port}`;
    published.inc({ source: 'order' }, 3);
    confirm.observe(0.01);
  });
  afterAll(() => close());

  it('answers every metric, the default ones included, without a name', async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('relay_messages_published_total{source="order",component="test"} 3');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('answers only the named metrics with ?name=', async () => {
    const res = await fetch(`${base}/metrics?name=relay_messages_published_total&name=confirm_seconds`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('relay_messages_published_total{source="order",component="test"} 3');
    expect(text).toContain('confirm_seconds_count{component="test"} 1');
    expect(text).not.toContain('process_cpu_user_seconds_total');
  });

  it('refuses an unknown name with a 400 naming the field and the name', async () => {
    const res = await fetch(`${base}/metrics?name=relay_messages_published_total&name=no_such_metric`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { path: string; message: string }[] };
    expect(body.errors).toEqual([{ path: 'query.name', message: 'no metric named "no_such_metric"' }]);
  });
});
