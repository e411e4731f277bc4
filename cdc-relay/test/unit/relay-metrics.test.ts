import { Registry } from 'prom-client';
import { createRelayMetrics } from '../../src/metrics';

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
});
