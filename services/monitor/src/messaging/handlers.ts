import { batchHandler, type BatchHandler, type Incoming, type InboxRetention } from '@saga/common/consumer';
import { EventCatalog, type EventType } from '@saga/common/contracts';
import type pg from 'pg';
import { summarize, type SagaSummary } from '../domain/saga';
import { loadEvents, lockSagas, recordEvents, saveSagas, type EventRow } from '../db/saga-repository';

/** Every event of the catalogue: the monitor's queue is bound to each routing key (not `#`, so unknown keys stay unroutable). */
export const ALL_EVENT_TYPES = Object.keys(EventCatalog) as EventType[];

/** A saga that became final in a committed batch: what the duration histogram observes. */
export type Finished = { orderId: string; outcome: 'CONFIRMED' | 'CANCELLED'; durationSeconds: number | undefined };

/** The fields of an incoming event the monitor keeps. Pure. */
export function toEventRow(m: Incoming, receivedAt: Date): EventRow {
  const data = m.data as { orderId?: string; reason?: unknown };
  const occurred = m.envelope.headers.occurredAt ? new Date(m.envelope.headers.occurredAt) : undefined;
  return {
    messageId: m.envelope.id,
    orderId: data.orderId ?? m.envelope.headers.correlationId,
    type: m.type,
    service: m.envelope.aggregateType,
    causationId: m.envelope.headers.causationId,
    traceparent: m.envelope.headers.traceparent ?? null,
    reason: typeof data.reason === 'string' ? data.reason : null,
    at: occurred && !Number.isNaN(occurred.getTime()) ? occurred : receivedAt,
  };
}

type State = { events: Map<string, EventRow[]>; recorded: Set<string> };

/**
 * The monitor's consumer, in the services' one shape (batchHandler: inbox claim, load, apply, save in one
 * transaction per batch): load locks the sagas the events belong to and records the new events (the inbox drops
 * redeliveries); save rewrites each touched saga's summary from all of its events, so the order in which the
 * services' events arrive does not matter. The monitor decides no events. `onFinished` runs after the commit.
 */
export function monitorHandler(pool: pg.Pool, consumer: string, onFinished: (f: Finished[]) => void = () => undefined, retention?: InboxRetention): BatchHandler {
  let finished: Finished[] = [];
  const inner = batchHandler<State>(
    pool,
    consumer,
    ALL_EVENT_TYPES,
    {
      load: async (client, inbox, messages) => {
        const now = new Date();
        const rows = messages.map((m) => toEventRow(m, now));
        await lockSagas(client, [...new Set(rows.map((r) => r.orderId))].sort());
        const recorded = new Set(await recordEvents(client, inbox, rows));
        const touched = [...new Set(rows.filter((r) => recorded.has(r.messageId)).map((r) => r.orderId))];
        return { claimed: [...recorded], state: { events: await loadEvents(client, touched), recorded } };
      },
      apply: (state) => ({ state, events: [] }),
      // No outbox: the monitor publishes nothing, and `apply` decides no events.
      save: async (client, _before, { events, recorded }) => {
        const summaries: { orderId: string; summary: SagaSummary; events: number }[] = [];
        finished = [];
        for (const [orderId, all] of events) {
          const before = all.filter((e) => !recorded.has(e.messageId));
          const summary = summarize(all);
          const wasFinal = before.length > 0 && summarize(before).status !== 'PENDING';
          if (!wasFinal && summary.status !== 'PENDING') {
            const duration = summary.startedAt && summary.finishedAt ? (summary.finishedAt.getTime() - summary.startedAt.getTime()) / 1000 : undefined;
            finished.push({ orderId, outcome: summary.status, durationSeconds: duration });
          }
          summaries.push({ orderId, summary, events: all.length });
        }
        await saveSagas(client, summaries);
      },
    },
    retention,
  );
  return {
    types: inner.types,
    apply: async (messages) => {
      finished = [];
      const outcomes = await inner.apply(messages);
      const done = finished;
      finished = [];
      if (done.length > 0) onFinished(done);
      return outcomes;
    },
  };
}
