/**
 * POST /orders: check the request (its body, its caller, the caller's rate), decide the order, and hand it to the
 * group commit (order-placement.ts), keyed by the request's Idempotency-Key; answer 202, or the problem the
 * placement met.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { QueueFullError } from '@saga/common/db/group-commit';
import { parseRequest } from '@saga/common/http/app';
import { forbidden, HttpProblemError, rateLimited, unavailable } from '@saga/common/http/http-error';
import { PROBLEM_TYPE } from '@saga/common/http/problem';
import { createRateLimiter } from '@saga/common/http/rate-limit';
import { decide, evolve, historyEntry, published, type Order } from '../domain/order';
import type { Admission } from './admission';
import { OutcomeUnknownError, type OrderPlacement } from './order-placement';
import { IdempotencyHeaders, PlaceOrderBody } from './order-schemas';

/**
 * The handler of POST /orders, placing orders through `placement` as the authenticated caller, each caller at most
 * at `rate`, none while `admission` refuses for the saga's backlog.
 */
export function placeOrderHandler(
  placement: OrderPlacement,
  rate: { perSecond: number; burst: number },
  admission?: Admission,
) {
  const limiter = createRateLimiter(rate);
  return async (req: Request, res: Response) => {
    const { 'idempotency-key': key } = parseRequest(IdempotencyHeaders, req.headers, 'headers');
    const body = parseRequest(PlaceOrderBody, req.body, 'body');
    const customerId = req.caller!.customerId;
    if (body.customerId !== undefined && body.customerId !== customerId)
      throw forbidden('the body names another customer than the bearer token');
    const wait = limiter.take(customerId);
    if (wait > 0) throw rateLimited(wait);
    admission?.check();
    const hash = createHash('sha256')
      .update(JSON.stringify({ customerId, items: body.items }))
      .digest('hex');
    const orderId = randomUUID();
    // The order, its items and history, and the OrderPlaced outbox row, in one local transaction (with the orders
    // of other requests placed at the same moment).
    const events = decide(undefined, { type: 'PlaceOrder', data: { orderId, customerId, items: body.items } });
    const order = events.reduce<Order | undefined>(evolve, undefined)!;
    const placed = await placement
      .place({
        order,
        history: events.map(historyEntry),
        events: published(events),
        traceparent: req.traceparent,
        ...(key ? { idempotency: { key, hash } } : {}),
      })
      .catch((err: unknown) => {
        throw placementProblem(err);
      });
    if (!placed.created) return void res.status(202).json({ orderId: placed.orderId, status: placed.status });
    req.log.info({ correlationId: orderId, orderId, items: body.items.length }, 'order placed');
    res.status(202).setHeader('Location', `/orders/${orderId}`).json({ orderId, status: placed.status });
  };
}

/** What a client is told when its order could not be placed for a reason of the service's. */
function placementProblem(err: unknown): unknown {
  if (err instanceof QueueFullError) return unavailable('too many orders are waiting to be written, try again');
  if (!(err instanceof OutcomeUnknownError)) return err;
  // With its Idempotency-Key a retry answers the order if it was placed; without one a retry could place it twice.
  if (err.keyed) return unavailable('the database is unavailable, try again with the same Idempotency-Key');
  return new HttpProblemError(
    500,
    `the database went away while order ${err.orderId} was written: it may be placed; GET its Location before placing it again`,
    { type: PROBLEM_TYPE.outcomeUnknown, title: 'Outcome Unknown', headers: { Location: `/orders/${err.orderId}` } },
  );
}
