import { createHash, randomUUID } from 'node:crypto';
import { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import { CancelReason, Cents, CustomerId, OrderLine, Sku } from '@saga/common/contracts/catalog';
import { notFound } from '@saga/common/domain/domain-error';
import { parseRequest } from '@saga/common/http/app';
import { apiRoutes, openApiDocument, type ApiOperation } from '@saga/common/http/openapi';
import type pg from 'pg';
import { decide, evolve, historyEntry, published, type Order } from '../domain/order';
import { QueueFullError } from '@saga/common/db/group-commit';
import { forbidden, HttpProblemError, rateLimited, unavailable } from '@saga/common/http/http-error';
import { createRateLimiter } from '@saga/common/http/rate-limit';
import { PROBLEM_TYPE } from '@saga/common/http/problem';
import type { Logger } from '@saga/common/runtime/logger';
import { getOrderView, listOrders } from '../db/order-repository';
import { createOrderPlacement, OutcomeUnknownError } from './order-placement';
import { createOrderStreams, type StreamLimits } from './order-streams';
import type { OrderNotifier } from './order-notifier';

export const PlaceOrderBody = z.strictObject({
  customerId: CustomerId.optional().meta({
    description: "The bearer token's customer (its subject); another customer's id is refused with 403",
  }),
  items: z.array(OrderLine.strict()).min(1).max(50),
});
/** Order ids in any case name one order; the database, and the notifications it sends, spell them in lower case. */
const OrderId = z
  .string()
  .uuid()
  .transform((id) => id.toLowerCase());
const IdParams = z.object({ orderId: OrderId });
const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(200)
    .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces')
    .optional()
    .meta({
      description:
        'Retries with the same key and body answer the same order; the same key with another body answers 409',
    }),
});
const OrderStatus = z.enum(['PENDING', 'CONFIRMED', 'CANCELLED']);
const ListQuery = z.strictObject({
  status: OrderStatus.optional().meta({ description: 'Only orders in this status' }),
  limit: z.coerce.number().int().min(1).max(100).default(20).meta({ description: 'Page size' }),
  after: OrderId.optional().meta({ description: 'The `next` of the previous page: the page starts after this order' }),
});

const OrderAccepted = z.object({ orderId: z.string().uuid(), status: OrderStatus }).meta({
  id: 'OrderAccepted',
  description: 'The order is placed (PENDING); a replay with the same Idempotency-Key answers its current status',
});
const HistoryEntry = z
  .object({
    type: z.string().meta({
      description:
        'The event: OrderPlaced, StockReserved, StockRejected, PaymentAuthorized, PaymentDeclined, OrderConfirmed, OrderCancelled',
    }),
    at: z.iso.datetime({ offset: true }),
    reason: z.string().optional(),
  })
  .meta({ id: 'HistoryEntry', description: "One step of the order's saga" });
const OrderViewSchema = z
  .object({
    orderId: z.string().uuid(),
    customerId: CustomerId,
    status: OrderStatus,
    reason: CancelReason.nullable().meta({ description: 'Why it was cancelled; null otherwise' }),
    totalCents: Cents.nullable().meta({ description: 'Known once stock is reserved' }),
    items: z.array(z.object({ sku: Sku, quantity: z.number().int().min(1), priceCents: Cents.nullable() })),
    history: z.array(HistoryEntry),
    createdAt: z.iso.datetime({ offset: true }),
    updatedAt: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'Order', description: 'An order, its lines (with the unit price once reserved) and its history' });
const OrderPage = z
  .object({
    orders: z.array(
      OrderViewSchema.pick({
        orderId: true,
        customerId: true,
        status: true,
        reason: true,
        totalCents: true,
        createdAt: true,
        updatedAt: true,
      }),
    ),
    next: z
      .string()
      .uuid()
      .nullable()
      .meta({ description: 'Cursor of the next page (its `after`), null on the last page' }),
  })
  .meta({ id: 'OrderPage', description: 'Orders, newest first' });

const UNAUTHORIZED = {
  description:
    'No valid bearer token (type urn:saga:problem:unauthorized): every /orders operation needs `Authorization: Bearer <JWT>` whose subject is the customer',
};

/** The HTTP contract of the order service, for its OpenAPI document. */
export const orderApi: ApiOperation[] = [
  {
    method: 'post',
    path: '/orders',
    operationId: 'placeOrder',
    summary: 'Place an order: the saga runs asynchronously; follow it with GET /orders/{orderId} or its event stream',
    tags: ['orders'],
    headers: IdempotencyHeaders,
    body: PlaceOrderBody,
    responses: {
      202: {
        description: 'Accepted: the order and its OrderPlaced event are written in one transaction',
        schema: OrderAccepted,
        headers: {
          Location: {
            description: 'The order (/orders/{orderId}); absent on an Idempotency-Key replay',
            schema: { type: 'string' },
          },
        },
      },
      401: UNAUTHORIZED,
      403: { description: 'The body names another customer than the bearer token (type urn:saga:problem:forbidden)' },
      409: { description: 'The Idempotency-Key was used with a different body (type urn:saga:problem:conflict)' },
      429: {
        description: 'Too many orders from this caller (type urn:saga:problem:rate-limited); retry after Retry-After',
      },
      503: {
        description:
          'Not accepted, nothing written: ORDER_PENDING_MAX orders are in progress (type urn:saga:problem:overloaded) or ORDER_QUEUE_MAX wait for a write; retry after Retry-After',
      },
    },
  },
  {
    method: 'get',
    path: '/orders',
    operationId: 'listOrders',
    summary: 'Orders, newest first, a page at a time (keyset pagination: pass `next` as `after`)',
    tags: ['orders'],
    query: ListQuery,
    responses: {
      200: { description: 'A page of orders', schema: OrderPage },
      401: UNAUTHORIZED,
      404: { description: 'The `after` order does not exist (type urn:saga:problem:not-found)' },
    },
  },
  {
    method: 'get',
    path: '/orders/:orderId',
    operationId: 'getOrder',
    summary: 'An order with its status, lines and history',
    tags: ['orders'],
    params: IdParams,
    responses: {
      200: { description: 'The order', schema: OrderViewSchema },
      401: UNAUTHORIZED,
      404: { description: "No such order of the caller's (type urn:saga:problem:not-found)" },
    },
  },
  {
    method: 'get',
    path: '/orders/:orderId/events',
    operationId: 'followOrder',
    summary:
      'Server-sent events: every history entry so far, each new one as it commits, then `end` with the final order',
    description:
      'A text/event-stream: one event per history entry (`id` = its position, `event` = its type, `data` = the entry as JSON with the orderId), ' +
      'comment lines (`: keep-alive`) every SSE_HEARTBEAT_MS, and once the order is CONFIRMED or CANCELLED an `end` event whose data is the ' +
      'order, after which the stream closes. A replica that shuts down closes the stream; reconnect (EventSource does) and the history is sent again.',
    tags: ['orders'],
    params: IdParams,
    responses: {
      200: {
        description: 'The stream',
        contentType: 'text/event-stream',
        rawSchema: { type: 'string' },
        extensions: {
          'x-sse-events': {
            '<history entry type>': { $ref: '#/components/schemas/HistoryEntry', description: 'with orderId' },
            end: { $ref: '#/components/schemas/Order' },
          },
        },
      },
      401: UNAUTHORIZED,
      404: { description: "No such order of the caller's (type urn:saga:problem:not-found)" },
      429: { description: 'The caller has SSE_MAX_PER_CALLER streams open (type urn:saga:problem:rate-limited)' },
    },
  },
];

export const orderOpenApi = openApiDocument(
  {
    title: 'order',
    version: '1.0.0',
    port: 8000,
    description: 'Places orders and shows how their saga unfolds. Money in integer cents.',
  },
  orderApi,
);

export type OrderRouteOptions = {
  /** Verifies the caller's bearer token (http/auth), setting `req.caller`. */
  authenticate: RequestHandler;
  heartbeatMs: number;
  rate: { perSecond: number; burst: number };
  /** Orders waiting for a write beyond this are refused (503). */
  queueMax: number;
  /** Admission by the saga's backlog (http/admission); none: every order is admitted. */
  admission?: { check: () => void };
  /** Open event streams per caller (beyond: 429) and on this replica (beyond: 503). */
  streams: StreamLimits;
};

const callerOf = (req: Request) => req.caller!.customerId;

/** The order service's HTTP contract: place, read, list, and follow an order, as the caller (a customer). */
export function orderRoutes(pool: pg.Pool, notifier: OrderNotifier, log: Logger, opts: OrderRouteOptions): Router {
  const r = Router();
  const heartbeatMs = opts.heartbeatMs;
  r.use(apiRoutes(orderOpenApi));
  r.use('/orders', opts.authenticate);
  const limiter = createRateLimiter(opts.rate);
  const streams = createOrderStreams(notifier, (id) => getOrderView(pool, id), log, opts.streams);
  // Orders placed while a write is in flight go out together in the next one: one statement and one commit for many
  // requests under load, none of them waiting when the service is idle. Each order's events carry the trace
  // context of the request that placed it, even when requests share a statement.
  const placement = createOrderPlacement(pool, log, { maxQueued: opts.queueMax });

  r.post('/orders', async (req, res) => {
    const { 'idempotency-key': key } = parseRequest(IdempotencyHeaders, req.headers, 'headers');
    const body = parseRequest(PlaceOrderBody, req.body, 'body');
    const customerId = callerOf(req);
    if (body.customerId !== undefined && body.customerId !== customerId)
      throw forbidden('the body names another customer than the bearer token');
    const wait = limiter.take(customerId);
    if (wait > 0) throw rateLimited(wait);
    opts.admission?.check();
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
  });

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

  r.get('/orders/:orderId/events', async (req, res) => {
    const { orderId } = parseRequest(IdParams, req.params, 'params');
    await streams.serve(req, res, orderId, callerOf(req), heartbeatMs);
  });

  return r;
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
