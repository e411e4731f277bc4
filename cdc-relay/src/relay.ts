import type { Registry } from 'prom-client';
import type { Logger } from '@saga/common/runtime/logger';
import type { RelayConfig } from './config';
import { createRelayMetrics } from './metrics';
import { createSlotGauges } from './slot-gauges';
import { createSource, type Source } from './source';

export type Relay = {
  start: () => void;
  /** `drainBy`: when the sources' drains give up (see drainDeadline); by default from now. */
  stop: (drainBy?: number) => Promise<void>;
  ready: () => Promise<Record<string, boolean>>;
  sources: Source[];
};

/** All sources of one relay process, plus the slot metrics read from the server's view on each scrape. */
export function createRelay(config: RelayConfig, log: Logger, registry: Registry): Relay {
  // relay_slot_lost is set by the scrape's read of the slot rows (slot-gauges.ts), so it awaits that read too.
  let readSlotsOnce: () => Promise<void> = async () => undefined;
  const metrics = createRelayMetrics(registry, () => readSlotsOnce());
  const sources = config.RELAY_SOURCES.map((s) => createSource(config, s, log.child({ source: s.name }), metrics));
  const slots = createSlotGauges(config, sources, metrics, registry, log);
  readSlotsOnce = slots.readOnce;

  return {
    sources,
    start() {
      for (const s of sources) s.start();
    },
    async stop(drainBy) {
      // The scrape's pools end beside the drains: their bounded reads must not add to the stop's time after them.
      await Promise.all([...sources.map((s) => s.stop(drainBy)), slots.stop()]);
    },
    async ready() {
      return Object.fromEntries(sources.map((s) => [`source:${s.name}`, s.state() === 'streaming']));
    },
  };
}
