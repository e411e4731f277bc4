/**
 * The batch handler: what a service does with a batch of decoded messages, in one transaction with its inbox and
 * outbox rows. Knows nothing of AMQP.
 */
import type pg from 'pg';
import type { DomainEvent, Envelope, EventData, EventType } from '../contracts/catalog';
import type { Logger } from '../runtime/logger';
import { inboxClaim, pruneInbox } from '../db/inbox';
import { outboxInsert, type OutboxEntry } from '../db/outbox';
import { withEdgedTransaction, type SqlClient, type SqlPart, type StatementSink } from '../db/sql';

export type Outcome = 'applied' | 'duplicate';

/**
 * A message that passed decoding and its contract, ready for a handler. `traceparent` is the context of the span
 * that handles it (a child of the message's own): the events it causes carry it, so each step of a saga has its
 * own parent span in the order's one trace. `log` carries its trace_id and span_id.
 */
export type Incoming = {
  [T in EventType]: { type: T; data: EventData<T>; envelope: Envelope; log: Logger; traceparent: string };
}[EventType];

/**
 * What a service does with its messages. `apply` receives messages in delivery order and applies them in one
 * transaction, exactly once in effect, answering an outcome per message; when it throws, nothing of the batch
 * was applied.
 */
export type BatchHandler = {
  /** The event types this consumer handles: its queue's bindings. */
  types: readonly EventType[];
  apply: (messages: Incoming[]) => Promise<Outcome[]>;
};

/** A step of one service over a batch: load the state the messages touch, decide and evolve, save. */
export type BatchStep<S> = {
  /**
   * One statement that runs `inbox` (claims the messages; RETURNING message_id names the new ones) and loads, locked,
   * the state every message of the batch touches. Answers the claimed ids and the state.
   */
  load: (
    client: SqlClient,
    inbox: SqlPart,
    messages: readonly Incoming[],
  ) => Promise<{ claimed: readonly string[]; state: S }>;
  /**
   * The events `message` leads to and the state after them: the service's `toCommand`, then its pure decide and
   * evolve. Runs inside the batch's transaction; it may log, and must do no I/O.
   */
  apply: (state: S, message: Incoming) => { state: S; events: DomainEvent[] };
  /**
   * One statement that saves what changed from `before` to `after` and runs `outbox`, given to `client`: it is sent
   * with COMMIT once the batch's work is done (db/sql.ts `withEdgedTransaction`), so its result is not read.
   */
  save: (client: StatementSink, before: S, after: S, outbox: SqlPart) => Promise<void>;
};

/**
 * Exactly-once in effect for a batch, in one transaction of two round trips whatever its size: BEGIN with the
 * statement that claims the messages in the inbox and loads the state they touch; fold decide/evolve over the new
 * messages in delivery order; the statement that saves the state with the outbox rows of every event, with COMMIT
 * (db/sql.ts `withEdgedTransaction`). A message claimed before (or twice in the batch)
 * changes nothing and answers 'duplicate'. While messages flow, inbox rows older than the retention are pruned.
 */
export function batchHandler<S>(
  pool: pg.Pool,
  consumer: string,
  types: readonly EventType[],
  step: BatchStep<S>,
  retention: InboxRetention = {},
): BatchHandler {
  const retentionHours = retention.retentionHours ?? 168;
  const pruneEveryMs = retention.pruneEveryMs ?? 60_000;
  let lastPrune = 0;
  /** Old inbox rows go while messages flow, at most once per `pruneEveryMs`: an idle service queries nothing. */
  async function pruneNowAndThen(log: Logger) {
    if (Date.now() - lastPrune < pruneEveryMs) return;
    lastPrune = Date.now();
    try {
      const pruned = await pruneInbox(pool, consumer, retentionHours);
      if (pruned > 0) log.info({ pruned, retentionHours }, 'pruned old inbox rows');
    } catch (err) {
      log.warn({ err }, 'could not prune old inbox rows; will try again');
    }
  }
  return {
    types,
    apply: async (messages) => {
      const outcomes = await applyInOneTransaction(messages);
      if (messages[0]) await pruneNowAndThen(messages[0].log);
      return outcomes;
    },
  };

  function applyInOneTransaction(messages: Incoming[]): Promise<Outcome[]> {
    return withEdgedTransaction(pool, async (first, last) => {
      const inbox = inboxClaim(
        consumer,
        messages.map((m) => ({ id: m.envelope.id, type: m.type })),
      );
      const { claimed, state: before } = await step.load(first, inbox, messages);
      const fresh = new Set(claimed);
      const outcomes: Outcome[] = [];
      const entries: OutboxEntry[] = [];
      let state = before;
      for (const m of messages) {
        if (!fresh.delete(m.envelope.id)) {
          outcomes.push('duplicate');
          continue;
        }
        const next = step.apply(state, m);
        state = next.state;
        entries.push({
          events: next.events,
          meta: {
            correlationId: m.envelope.headers.correlationId,
            causationId: m.envelope.id,
            traceparent: m.traceparent,
          },
        });
        outcomes.push('applied');
      }
      if (entries.length > 0) await step.save(last, before, state, outboxInsert(entries));
      return outcomes;
    });
  }
}

/** How long the inbox remembers a message (hours), and how often old rows are pruned while messages flow. */
export type InboxRetention = { retentionHours?: number; pruneEveryMs?: number };
