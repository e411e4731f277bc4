/**
 * What the monitor knows of one saga, derived from the events it has seen of it, in whatever order they arrived
 * (each service's events reach the monitor through its own relay stream, so a later step can arrive first).
 * Pure: no clock, no I/O; the handler and the HTTP routes pass `now` in.
 */
import type { EventType } from '@saga/common/contracts/catalog';

export type SagaStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';

/** One event of a saga as the monitor stores it. */
export type SagaEvent = {
  messageId: string;
  type: EventType;
  /** The service that published it (its aggregate type). */
  service: string;
  causationId: string | null;
  traceparent: string | null;
  /** When the producer wrote it (its outbox row); when the monitor saw it, if the producer did not say. */
  at: Date;
  /** The reason an event of refusal carries (StockRejected, PaymentDeclined, OrderCancelled). */
  reason: string | null;
};

/** The step a saga waits for: who must act next and which events would show it did. */
export type Step = { service: string; step: string; events: EventType[] };

export type SagaSummary = {
  /** CONFIRMED or CANCELLED once the order's final event (or inventory's follow-up to it) is seen. */
  status: SagaStatus;
  reason: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  lastEventAt: Date;
  lastEventType: EventType;
  /**
   * True when nothing more is due: the order is final and inventory followed up (StockCommitted after a
   * confirmation; StockReleased after a cancellation that had reserved stock). A final but unsettled saga still
   * waits (a compensation that does not happen leaks stock) and can be stuck.
   */
  settled: boolean;
  /** Undefined once settled. */
  waitingFor: Step | undefined;
};

const has = (events: readonly SagaEvent[], type: EventType) => events.some((e) => e.type === type);
const first = (events: readonly SagaEvent[], type: EventType) => events.find((e) => e.type === type);

/**
 * The next step of the choreography, read from the events seen so far: order placed -> inventory reserves or
 * rejects -> payment authorizes or declines -> order confirms or cancels -> inventory commits the sale or releases
 * the reservation. Undefined when nothing more is due.
 */
export function nextStep(events: readonly SagaEvent[]): Step | undefined {
  if (has(events, 'StockCommitted') || has(events, 'StockReleased')) return undefined;
  if (has(events, 'OrderConfirmed'))
    return { service: 'inventory', step: 'turn the reservation into a sale', events: ['StockCommitted'] };
  if (has(events, 'OrderCancelled')) {
    // Inventory releases only what it reserved: a saga cancelled for lack of stock has nothing to compensate.
    return has(events, 'StockReserved')
      ? { service: 'inventory', step: 'release the reserved stock (compensation)', events: ['StockReleased'] }
      : undefined;
  }
  if (has(events, 'PaymentAuthorized'))
    return { service: 'order', step: 'confirm the paid order', events: ['OrderConfirmed'] };
  if (has(events, 'PaymentDeclined') || has(events, 'StockRejected'))
    return { service: 'order', step: 'cancel the order', events: ['OrderCancelled'] };
  if (has(events, 'StockReserved'))
    return {
      service: 'payment',
      step: 'authorize or decline the payment',
      events: ['PaymentAuthorized', 'PaymentDeclined'],
    };
  if (has(events, 'OrderPlaced'))
    return { service: 'inventory', step: 'reserve or reject the stock', events: ['StockReserved', 'StockRejected'] };
  return { service: 'order', step: 'place the order (its OrderPlaced has not arrived)', events: ['OrderPlaced'] };
}

/** The saga as of `events` (at least one). */
export function summarize(events: readonly SagaEvent[]): SagaSummary {
  if (events.length === 0) throw new Error('a saga summary needs at least one event');
  const sorted = causalOrder(events);
  const last = sorted.reduce((a, b) => (b.at.getTime() >= a.at.getTime() ? b : a));
  const confirmed = first(sorted, 'OrderConfirmed');
  const cancelled = first(sorted, 'OrderCancelled');
  // Inventory's follow-ups exist only after the order's final event: they imply it even if it has not arrived yet.
  const status: SagaStatus =
    confirmed || has(sorted, 'StockCommitted')
      ? 'CONFIRMED'
      : cancelled || has(sorted, 'StockReleased')
        ? 'CANCELLED'
        : 'PENDING';
  const waitingFor = nextStep(sorted);
  return {
    status,
    reason: cancelled?.reason ?? null,
    startedAt: first(sorted, 'OrderPlaced')?.at ?? null,
    finishedAt: (confirmed ?? cancelled)?.at ?? null,
    lastEventAt: last.at,
    lastEventType: last.type,
    settled: waitingFor === undefined,
    waitingFor,
  };
}

/**
 * An unsettled saga is stuck when nothing happened to it for `stuckAfterMs` as of `asOf`: the present when the
 * monitor has caught up with its queue, else the time of the newest event it has consumed (a monitor that is behind
 * must not call every saga in flight stuck).
 */
export const isStuck = (s: Pick<SagaSummary, 'settled' | 'lastEventAt'>, asOf: Date, stuckAfterMs: number) =>
  !s.settled && asOf.getTime() - s.lastEventAt.getTime() > stuckAfterMs;

/**
 * Events in causal order: each after the event that caused it (causationId), roots first, ties by time. Clocks of
 * different services may disagree by a few milliseconds; causation does not.
 */
export function causalOrder<E extends Pick<SagaEvent, 'messageId' | 'causationId' | 'at'>>(events: readonly E[]): E[] {
  const byTime = [...events].sort((a, b) => a.at.getTime() - b.at.getTime() || a.messageId.localeCompare(b.messageId));
  const ids = new Set(byTime.map((e) => e.messageId));
  const children = new Map<string, E[]>();
  const roots: E[] = [];
  for (const e of byTime) {
    if (e.causationId && ids.has(e.causationId) && e.causationId !== e.messageId) {
      const list = children.get(e.causationId) ?? [];
      list.push(e);
      children.set(e.causationId, list);
    } else roots.push(e);
  }
  const out: E[] = [];
  const seen = new Set<string>();
  const visit = (e: E) => {
    if (seen.has(e.messageId)) return;
    seen.add(e.messageId);
    out.push(e);
    for (const c of children.get(e.messageId) ?? []) visit(c);
  };
  // Roots in time order; a cycle (impossible from real producers) still lists every event once.
  for (const r of roots) visit(r);
  for (const e of byTime) visit(e);
  return out;
}

/** Timeline of one saga: events in causal order with the delay from the event that caused each (its hop). */
export function timeline(events: readonly SagaEvent[]): (SagaEvent & { hopMs: number | null; offsetMs: number })[] {
  const ordered = causalOrder(events);
  const byId = new Map(ordered.map((e) => [e.messageId, e]));
  const start = Math.min(...ordered.map((e) => e.at.getTime()));
  return ordered.map((e) => {
    const cause = e.causationId ? byId.get(e.causationId) : undefined;
    return { ...e, hopMs: cause ? e.at.getTime() - cause.at.getTime() : null, offsetMs: e.at.getTime() - start };
  });
}
