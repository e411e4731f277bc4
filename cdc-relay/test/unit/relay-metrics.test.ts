import { Registry } from 'prom-client';
import { createPublishedCount, createRelayMetrics } from '../../src/metrics';

describe('relay metrics', () => {
  it('relay_slot_lost shows what the current scrape read, not the previous one (regression: it lagged one scrape)', async () => {
    const registry = new Registry();
    let lost = 0;
    // The scrape's read of the slot rows: answers later than the scrape starts, as a database query does.
    const metrics = createRelayMetrics(registry, async () => {
      await new Promise((r) => setTimeout(r, 5));
      metrics.slotLost.set({ source: 'order' }, lost);
    });
    expect(await registry.metrics()).toMatch(/relay_slot_lost\{source="order"\} 0/);
    lost = 1;
    expect(await registry.metrics()).toMatch(/relay_slot_lost\{source="order"\} 1/);
  });

  it('publishes the count and the time of the last confirm itself at each flush, nothing before the first', async () => {
    const registry = new Registry();
    const metrics = createRelayMetrics(registry);
    let t = 1_000;
    const labels = { source: 'order' };
    const count = createPublishedCount(metrics.published.labels(labels), metrics.lastPublished.labels(labels), () => t);
    count.flush();
    expect(await registry.metrics()).not.toMatch(/relay_last_published_timestamp_seconds\{/);
    count.count();
    t = 1_005;
    count.count();
    t = 1_020; // the flush comes later: the gauge keeps the last confirm's time
    count.flush();
    let text = await registry.metrics();
    expect(text).toMatch(/relay_last_published_timestamp_seconds\{source="order"\} 1\.005\n/);
    expect(text).toMatch(/relay_messages_published_total\{source="order"\} 2\n/);
    t = 2_000;
    count.flush(); // nothing new: neither moves
    text = await registry.metrics();
    expect(text).toMatch(/relay_last_published_timestamp_seconds\{source="order"\} 1\.005\n/);
    expect(text).toMatch(/relay_messages_published_total\{source="order"\} 2\n/);
  });
});
