/** GET /orders/:orderId/events: the server-sent event stream of one of the caller's orders (order-streams.ts). */
import { Router } from 'express';
import type pg from 'pg';
import { parseRequest } from '@saga/common/http/app';
import type { Logger } from '@saga/common/runtime/logger';
import { getOrderView } from '../db/order-repository';
import type { OrderNotifier } from './order-notifier';
import { IdParams } from './order-schemas';
import { createOrderStreams, type StreamLimits } from './order-streams';

export type StreamRouteOptions = {
  /** Comment lines (`: keep-alive`) this often. */
  heartbeatMs: number;
  /** Open event streams per caller (beyond: 429) and on this replica (beyond: 503). */
  limits: StreamLimits;
};

export function orderStreamRoutes(pool: pg.Pool, notifier: OrderNotifier, log: Logger, opts: StreamRouteOptions) {
  const r = Router();
  const streams = createOrderStreams(notifier, (id) => getOrderView(pool, id), log, opts.limits);
  r.get('/orders/:orderId/events', async (req, res) => {
    const { orderId } = parseRequest(IdParams, req.params, 'params');
    await streams.serve(req, res, orderId, req.caller!.customerId, opts.heartbeatMs);
  });
  return r;
}
