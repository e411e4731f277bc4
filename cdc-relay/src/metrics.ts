import { Counter, Gauge, type Registry } from 'prom-client';
import { LeanHistogram } from '@saga/common/runtime/lean-histogram';

/**
 * Every metric the relay exports, created once per process. `readSlots` is the scrape's one read of the slot rows:
 * prom-client reads every metric of a scrape together, so a gauge that read sets must await it, or it shows what the
 * previous scrape read.
 */
export function createRelayMetrics(registry: Registry, readSlots?: () => Promise<void>) {
  return { ...streamMetrics(registry), ...slotMetrics(registry, readSlots) };
}

/** What the stream counts: messages, refusals, sessions. */
function streamMetrics(registry: Registry) {
  const registers = [registry];
  return {
    published: new Counter({
      name: 'relay_messages_published_total',
      help: 'Outbox rows published and confirmed by the broker',
      labelNames: ['source'] as const,
      registers,
    }),
    invalid: new Counter({
      name: 'relay_invalid_rows_total',
      help: 'Outbox rows that could not become an event; sent to the invalid queue',
      labelNames: ['source'] as const,
      registers,
    }),
    nacks: new Counter({
      name: 'relay_nacks_total',
      help: 'Publishes the broker did not store: a nack (sent again after a backoff), a refusal it closed the channel for (the row goes to the invalid queue), a return (the session restarts)',
      labelNames: ['source'] as const,
      registers,
    }),
    sentAgain: new Counter({
      name: 'relay_messages_sent_again_total',
      help: 'Messages published more than once, copies a queue may already hold: cause=nack, sent again after a nack; cause=restart, sent by a session that failed before acknowledging their transaction, so the next one sends them again',
      labelNames: ['source', 'cause'] as const,
      registers,
    }),
    returned: new Counter({
      name: 'relay_returned_total',
      help: 'Messages the broker returned as unroutable despite the alternate exchange',
      labelNames: ['source'] as const,
      registers,
    }),
    reconnects: new Counter({
      name: 'relay_reconnects_total',
      help: 'Sessions restarted after an error, by source',
      labelNames: ['source'] as const,
      registers,
    }),
    livenessTimeouts: new Counter({
      name: 'relay_replication_timeouts_total',
      help: 'Replication connections dropped for silence (half-open link)',
      labelNames: ['source'] as const,
      registers,
    }),
  };
}

/** The slot's state, the stream's state, and the position acknowledged to the slot. */
function slotMetrics(registry: Registry, readSlots?: () => Promise<void>) {
  const registers = [registry];
  return {
    slotMissing: new Gauge({
      name: 'relay_slot_missing',
      help: '1 while the source slot does not exist and may not be created here: RELAY_CREATE_SLOT is off, or its marker says it existed (failover, dropped slot); recover it (docs/relay.md)',
      labelNames: ['source'] as const,
      registers,
    }),
    slotLost: new Gauge({
      name: 'relay_slot_lost',
      help: '1 when the server invalidated the slot (wal_status lost): events were lost, see the README',
      labelNames: ['source'] as const,
      registers,
      collect: readSlots && (() => readSlots()),
    }),
    // Observed once per message: prom-client's own histogram cost about 0.6 µs an observation (lean-histogram.ts).
    confirmSeconds: new LeanHistogram({
      name: 'relay_publish_confirm_seconds',
      help: 'Time from publish to the broker confirm',
      labelNames: ['source'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    streaming: new Gauge({
      name: 'relay_streaming',
      help: '1 while this relay streams the source, 0 while standing by or reconnecting',
      labelNames: ['source'] as const,
      registers,
    }),
    lastPublished: new Gauge({
      name: 'relay_last_published_timestamp_seconds',
      help: "When the broker last confirmed an event of this source (this relay's clock; brought up to date with relay_messages_published_total; absent until this process published one): standing still while the lag grows, publishing is stuck",
      labelNames: ['source'] as const,
      registers,
    }),
    inFlight: new Gauge({
      name: 'relay_in_flight_messages',
      help: 'Published messages awaiting a broker confirm',
      labelNames: ['source'] as const,
      registers,
    }),
    acknowledgedCommitTime: new Gauge({
      name: 'relay_acknowledged_commit_timestamp_seconds',
      help: 'Commit time (source server clock) of the last transaction acknowledged to PostgreSQL: after a lost slot, reconcile from a little before it',
      labelNames: ['source'] as const,
      registers,
    }),
    acknowledgedLsn: new Gauge({
      name: 'relay_acknowledged_lsn',
      help: 'Last WAL position acknowledged to PostgreSQL (as a number)',
      labelNames: ['source'] as const,
      registers,
    }),
  };
}
export type RelayMetrics = ReturnType<typeof createRelayMetrics>;

/**
 * The published counter and the last confirm's time of one source, brought up to date in bulk: a prom-client
 * increment per message costs more than the rest of its bookkeeping in the pipe, so confirms are counted here and
 * flushed every acknowledgement interval and at a session's end. The gauge gets the time of the last confirm itself
 * (`now` at `count`), not the flush's: the bench times a drain by it.
 */
export function createPublishedCount(
  counter: { inc: (n: number) => void },
  lastAt: { set: (seconds: number) => void },
  now: () => number = Date.now,
) {
  let sinceFlush = 0;
  let lastMs = 0;
  return {
    count(): void {
      sinceFlush++;
      lastMs = now();
    },
    flush(): void {
      if (sinceFlush === 0) return;
      lastAt.set(lastMs / 1000);
      counter.inc(sinceFlush);
      sinceFlush = 0;
    },
  };
}
