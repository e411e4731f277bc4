/** The lean histogram is exported exactly as prom-client's Histogram, for the same observations. */
import { Histogram, Registry } from 'prom-client';
import { LeanHistogram } from '../../src/runtime/lean-histogram';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

function pair() {
  const theirs = new Registry();
  const ours = new Registry();
  for (const r of [theirs, ours]) r.setDefaultLabels({ component: 'relay' });
  const config = {
    name: 'confirm_seconds',
    help: 'Time from publish to the broker confirm',
    labelNames: ['source'] as const,
    buckets: BUCKETS,
  };
  return {
    theirs,
    ours,
    reference: new Histogram({ ...config, registers: [theirs] }),
    lean: new LeanHistogram({ ...config, registers: [ours] }),
  };
}

describe('lean histogram', () => {
  it('writes the same exposition text and JSON as prom-client for the same observations', async () => {
    const { theirs, ours, reference, lean } = pair();
    const values = [0, 0.0005, 0.00051, 0.001, 0.003, 0.05, 0.2500001, 1, 1.5, 42, 1e-9];
    for (const source of ['order', 'payment']) {
      const child = lean.labels({ source });
      const ref = reference.labels({ source });
      for (const v of source === 'order' ? values : values.slice(3)) {
        child.observe(v);
        ref.observe(v);
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getSingleMetricAsString('confirm_seconds')).toBe(
      await theirs.getSingleMetricAsString('confirm_seconds'),
    );
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
    expect(await ours.metrics()).toContain('confirm_seconds_count{component="relay",source="order"} 11');
  });

  it('lists a series only once observed, in the order of first observation, and drops all on reset, as prom-client', async () => {
    const { theirs, ours, reference, lean } = pair();
    const mine = { order: lean.labels({ source: 'order' }), payment: lean.labels({ source: 'payment' }) };
    const ref = { order: reference.labels({ source: 'order' }), payment: reference.labels({ source: 'payment' }) };
    expect(await ours.metrics()).toBe(await theirs.metrics()); // asked for, never observed: no series
    for (const source of ['payment', 'order', 'payment'] as const) {
      mine[source].observe(0.004);
      ref[source].observe(0.004);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    mine.order.observe(0.2);
    ref.order.observe(0.2);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.metrics()).toContain('confirm_seconds_count{component="relay",source="order"} 1');
    expect(await ours.metrics()).not.toContain('source="payment"');
  });

  it('counts into one series per label set, however often its child is asked for', async () => {
    const { ours, lean } = pair();
    lean.labels({ source: 'order' }).observe(0.002);
    lean.labels({ source: 'order' }).observe(0.3);
    const text = await ours.metrics();
    expect(text).toContain('confirm_seconds_bucket{le="0.0025",component="relay",source="order"} 1');
    expect(text).toContain('confirm_seconds_bucket{le="+Inf",component="relay",source="order"} 2');
    expect(text.match(/confirm_seconds_count/g)).toHaveLength(1);
  });

  it('refuses a value that is not a finite number, and labels other than its own', () => {
    const { lean } = pair();
    const child = lean.labels({ source: 'order' });
    expect(() => child.observe(Number.NaN)).toThrow(TypeError);
    expect(() => child.observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => lean.labels({ source: 'order', other: 'x' } as never)).toThrow(/exactly the labels source/);
    expect(() => lean.labels({} as never)).toThrow(/exactly the labels source/);
  });
});
