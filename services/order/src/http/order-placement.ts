import { setTimeout as delay } from 'node:timers/promises';
import { conflict } from '@saga/common/domain/domain-error';
import { createGroupCommit } from '@saga/common/db/group-commit';
import { isConnectionError } from '@saga/common/db/pg';
import type { SqlClient } from '@saga/common/db/sql';
import type { Logger } from '@saga/common/runtime/logger';
import { findPlaced, insertOrders, type NewOrder, type PlacedOrder } from '../db/order-repository';
import type { OrderStatus } from '../domain/order';

export type Placement = NewOrder & { traceparent: string };
/** `created`: this request placed the order; false when an Idempotency-Key replay answers an earlier one. */
export type Placed = { orderId: string; status: OrderStatus; created: boolean };

/**
 * The database could not be reached to write the order, and may or may not have committed it. With an
 * Idempotency-Key the client may retry safely; without one it must not (it could place the order twice), so the
 * answer tells it where to look instead.
 */
export class OutcomeUnknownError extends Error {
  constructor(
    readonly orderId: string,
    readonly keyed: boolean,
    override readonly cause: unknown,
  ) {
    super(`could not learn whether order ${orderId} was placed`);
    this.name = 'OutcomeUnknownError';
  }
}

export type PlacementOptions = {
  maxBatch?: number;
  maxInFlight?: number;
  /** Orders waiting for a write beyond this are refused (QueueFullError): load shedding, nothing accepted is lost. */
  maxQueued?: number;
  /** Attempts at a write whose connection failed; each is safe to repeat (see insertOrders). */
  attempts?: number;
  retryDelayMs?: number;
  /** Pacing of writes that are not full (group-commit.ts `intervalMs`). */
  intervalMs?: number | (() => number);
};

/**
 * Places orders by group commit. A write is idempotent (each order carries its own id, conflicts are skipped), so a
 * write whose connection failed, perhaps after its commit, is simply written again; an order found under its own id
 * is then this request's, committed by the earlier attempt. An order skipped for its (customer, Idempotency-Key) is
 * answered as a replay of the one that holds the key, or 409 when that one had another body.
 */
export function createOrderPlacement(c: SqlClient, log: Logger, opts: PlacementOptions = {}) {
  const attempts = opts.attempts ?? 3;
  const retryDelayMs = opts.retryDelayMs ?? 200;

  async function writeOnce(group: Placement[]): Promise<(Placed | Error)[]> {
    const outbox = group.map((p) => ({
      events: p.events,
      meta: { correlationId: p.order.id, causationId: null, traceparent: p.traceparent },
    }));
    const inserted = await insertOrders(c, group, outbox);
    const skipped = group.filter((p) => !inserted.has(p.order.id));
    const found = skipped.length
      ? await findPlaced(
          c,
          skipped.map((p) => p.order.id),
          skipped.flatMap((p) => (p.idempotency ? [{ customerId: p.order.customerId, key: p.idempotency.key }] : [])),
        )
      : [];
    return group.map((p) => (inserted.has(p.order.id) ? placed(p, true) : answerSkipped(p, found)));
  }

  async function write(group: Placement[]): Promise<(Placed | Error)[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await writeOnce(group);
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        if (attempt >= attempts)
          return group.map((p) => new OutcomeUnknownError(p.order.id, p.idempotency !== undefined, err));
        log.warn({ err, attempt, orders: group.length }, 'order write lost its connection; writing again');
        await delay(retryDelayMs * attempt);
      }
    }
  }

  const submit = createGroupCommit(write, opts.maxBatch ?? 64, opts.maxInFlight ?? 2, {
    maxQueued: opts.maxQueued,
    // Validation happens before an order is queued, so a group fails as a whole only for a reason of the
    // database's; writing its orders one by one then would only repeat it.
    isolate: (err) => !isConnectionError(err),
    intervalMs: opts.intervalMs,
  });

  return {
    /** Place `p`; throws a 409 DomainError, OutcomeUnknownError, QueueFullError, or the database's error. */
    async place(p: Placement): Promise<Placed> {
      const result = await submit(p);
      if (result instanceof Error) throw result;
      return result;
    },
  };
}

const placed = (p: Placement, created: boolean): Placed => ({ orderId: p.order.id, status: p.order.status, created });

function answerSkipped(p: Placement, found: readonly PlacedOrder[]): Placed | Error {
  const own = found.find((f) => f.id === p.order.id);
  if (own) return { orderId: own.id, status: own.status, created: true };
  const holder = p.idempotency
    ? found.find((f) => f.customerId === p.order.customerId && f.key === p.idempotency!.key)
    : undefined;
  if (!holder) return new Error(`order ${p.order.id} was neither inserted nor found`);
  if (holder.hash !== p.idempotency!.hash) return conflict('Idempotency-Key was used with a different request body');
  return { orderId: holder.id, status: holder.status, created: false };
}

export type OrderPlacement = ReturnType<typeof createOrderPlacement>;
