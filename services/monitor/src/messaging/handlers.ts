import {
  batchHandler,
  type BatchHandler,
  type Incoming,
  type InboxRetention,
} from '@saga/common/messaging/batch-handler';
import { EventCatalog, type EventType } from '@saga/common/contracts/catalog';
import type pg from 'pg';
import { summarize, type SagaSummary } from '../domain/saga';
import { loadEvents, lockSagas, recordEvents, saveSagas, type EventRow } from '../db/saga-repository';

/** Every event of the catalogue: the monitor's queue is bound to each routing key (not `#`, so unknown keys stay unroutable). */
export const ALL_EVENT_TYPES = Object.keys(EventCatalog) as EventType[];

/** A saga whose duration became known in a committed batch: what the duration histogram observes. */
export type Finished = { orderId: string; outcome: 'CONFIRMED' | 'CANCELLED'; durationSeconds: number };
/** What a committed batch changed, for the metrics and the catch-up clock. */
export type Committed = { finished: Finished[]; newestEventAt: Date | undefined };

/**
 * How far an event's own `occurredAt` may lie from the moment the monitor received it. A producer's clock may run a
 * little ahead; an event may wait in the queue for days while the monitor is down. Beyond these, the header is not
 * believed (one far-future time would otherwise make every pending saga look stuck) and the receipt time is used.
 */
export const OCCURRED_AT_BOUNDS = { aheadMs: 5_000, behindMs: 7 * 24 * 3600_000 };
/** Longest header text the monitor stores (ids and trace contexts are far shorter). */
export const MAX_HEADER_TEXT = 256;

/** `occurredAt` when it is a time within the bounds around `receivedAt`, else `receivedAt`. Pure. */
export function eventTime(occurredAt: unknown, receivedAt: Date): Date {
  if (typeof occurredAt !== 'string') return receivedAt;
  const t = new Date(occurredAt).getTime();
  const r = receivedAt.getTime();
  if (Number.isNaN(t) || t > r + OCCURRED_AT_BOUNDS.aheadMs || t < r - OCCURRED_AT_BOUNDS.behindMs) return receivedAt;
  return new Date(t);
}

const capped = (v: unknown): string | null => (typeof v === 'string' ? v.slice(0, MAX_HEADER_TEXT) : null);

/** The fields of an incoming event the monitor keeps. Pure. */
export function toEventRow(m: Incoming, receivedAt: Date): EventRow {
  const data = m.data as { orderId?: string; reason?: unknown };
  const { headers } = m.envelope;
  return {
    messageId: m.envelope.id,
    orderId: data.orderId ?? m.envelope.headers.correlationId,
    type: m.type,
    service: m.envelope.aggregateType,
    causationId: capped(headers.causationId),
    traceparent: capped(headers.traceparent),
    reason: capped(data.reason),
    at: eventTime(headers.occurredAt, receivedAt),
  };
}

const durationOf = (s: SagaSummary) =>
  s.startedAt && s.finishedAt ? (s.finishedAt.getTime() - s.startedAt.getTime()) / 1000 : undefined;

/**
 * Sagas whose duration is known after these events and was not before (the final event and OrderPlaced can arrive
 * in either order: each saga is observed once, when the later of the two arrives). Pure.
 */
export function newlyFinished(
  events: ReadonlyMap<string, readonly EventRow[]>,
  recorded: ReadonlySet<string>,
): { finished: Finished[]; summaries: { orderId: string; summary: SagaSummary; events: number }[] } {
  const finished: Finished[] = [];
  const summaries: { orderId: string; summary: SagaSummary; events: number }[] = [];
  for (const [orderId, all] of events) {
    const before = all.filter((e) => !recorded.has(e.messageId));
    const summary = summarize(all);
    const duration = durationOf(summary);
    if (
      duration !== undefined &&
      summary.status !== 'PENDING' &&
      (before.length === 0 || durationOf(summarize(before)) === undefined)
    ) {
      finished.push({ orderId, outcome: summary.status, durationSeconds: duration });
    }
    summaries.push({ orderId, summary, events: all.length });
  }
  return { finished, summaries };
}

type State = { events: Map<string, EventRow[]>; recorded: Set<string>; newest: Date | undefined };

/**
 * The monitor's consumer, in the services' one shape (batchHandler: inbox claim, load, apply, save in one
 * transaction per batch): load locks the sagas the events belong to and records the new events (the inbox drops
 * redeliveries); save rewrites each touched saga's summary from all of its events, so the order in which the
 * services' events arrive does not matter. The monitor decides no events. `onCommitted` runs after the commit.
 */
export function monitorHandler(
  pool: pg.Pool,
  consumer: string,
  onCommitted: (c: Committed) => void = () => undefined,
  retention?: InboxRetention,
): BatchHandler {
  let pending: Committed | undefined;
  const inner = batchHandler<State>(
    pool,
    consumer,
    ALL_EVENT_TYPES,
    {
      load: async (client, inbox, messages) => {
        const now = new Date();
        const rows = messages.map((m) => toEventRow(m, now));
        await lockSagas(
          client,
          rows.map((r) => r.orderId),
        );
        const recorded = new Set(await recordEvents(client, inbox, rows));
        const fresh = rows.filter((r) => recorded.has(r.messageId));
        const newest = fresh.reduce<Date | undefined>((a, r) => (!a || r.at > a ? r.at : a), undefined);
        const touched = [...new Set(fresh.map((r) => r.orderId))];
        return { claimed: [...recorded], state: { events: await loadEvents(client, touched), recorded, newest } };
      },
      apply: (state) => ({ state, events: [] }),
      // No outbox: the monitor publishes nothing, and `apply` decides no events.
      save: async (client, _before, { events, recorded, newest }) => {
        const { finished, summaries } = newlyFinished(events, recorded);
        await saveSagas(client, summaries);
        pending = { finished, newestEventAt: newest };
      },
    },
    retention,
  );
  return {
    types: inner.types,
    apply: async (messages) => {
      pending = undefined;
      const outcomes = await inner.apply(messages);
      // Set by save inside the transaction that just committed (a failed one throws before this line).
      const done = pending;
      pending = undefined;
      if (done) onCommitted(done);
      return outcomes;
    },
  };
}
