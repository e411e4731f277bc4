/**
 * The order service's router: its OpenAPI document (order-api.ts), authentication of every /orders route, placing
 * an order (place-order.ts), reading and listing the caller's orders (here), following one (order-stream-routes.ts).
 */
import { Router, type Request, type RequestHandler } from 'express';
import type pg from 'pg';
import { notFound } from '@saga/common/domain/domain-error';
import { parseRequest } from '@saga/common/http/app';
import { apiRoutes } from '@saga/common/http/openapi';
import type { Admission } from './admission';
import type { Logger } from '@saga/common/runtime/logger';
import { getOrderView, listOrders } from '../db/order-repository';
import { orderOpenApi } from './order-api';
import type { OrderNotifier } from './order-notifier';
import { createOrderPlacement } from './order-placement';
import { IdParams, ListQuery } from './order-schemas';
import { orderStreamRoutes } from './order-stream-routes';
import type { StreamLimits } from './order-streams';
import { placeOrderHandler } from './place-order';

export type OrderRouteOptions = {
  /** Verifies the caller's bearer token (http/auth), setting `req.caller`. */
  authenticate: RequestHandler;
  heartbeatMs: number;
  rate: { perSecond: number; burst: number };
  /** Orders waiting for a write beyond this are refused (503). */
  queueMax: number;
  /** Pacing of writes that are not full (ORDER_WRITE_INTERVAL_MS). */
  writeIntervalMs?: number | (() => number);
  /** Admission by the saga's backlog (admission.ts); none: every order is admitted. */
  admission?: Admission;
  /** Open event streams per caller (beyond: 429) and on this replica (beyond: 503). */
  streams: StreamLimits;
};

const callerOf = (req: Request) => req.caller!.customerId;

/** The order service's HTTP contract: place, read, list, and follow an order, as the caller (a customer). */
export function orderRoutes(pool: pg.Pool, notifier: OrderNotifier, log: Logger, opts: OrderRouteOptions): Router {
  const r = Router();
  r.use(apiRoutes(orderOpenApi));
  r.use('/orders', opts.authenticate);
  // Orders placed while both writes are in flight go out together in the next one: one statement and one commit for
  // many requests under load, none of them waiting when the service is idle. While sagas queue up (`writeIntervalMs`
  // answers ORDER_WRITE_INTERVAL_MS), a write also waits that long after the last one started, to gather more. Each
  // order's events carry the trace context of the request that placed it, even when requests share a statement.
  const placement = createOrderPlacement(pool, log, { maxQueued: opts.queueMax, intervalMs: opts.writeIntervalMs });

  r.post('/orders', placeOrderHandler(placement, opts.rate, opts.admission));

  r.get('/orders', async (req, res) => {
    const q = parseRequest(ListQuery, req.query, 'query');
    const rows = await listOrders(pool, { ...q, customerId: callerOf(req) });
    if (!rows) throw notFound('order', q.after!);
    res.json({ orders: rows, next: rows.length === q.limit ? rows[rows.length - 1]!.orderId : null });
  });

  r.get('/orders/:orderId', async (req, res) => {
    const { orderId } = parseRequest(IdParams, req.params, 'params');
    const view = await getOrderView(pool, orderId, callerOf(req));
    if (!view) throw notFound('order', orderId);
    res.json(view);
  });

  r.use(orderStreamRoutes(pool, notifier, log, { heartbeatMs: opts.heartbeatMs, limits: opts.streams }));
  return r;
}
