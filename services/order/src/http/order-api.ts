/** The order service's HTTP contract (its OpenAPI document), from the schemas its routes validate with. */
import { openApiDocument, type ApiOperation } from '@saga/common/http/openapi';
import {
  IdempotencyHeaders,
  IdParams,
  ListQuery,
  OrderAccepted,
  OrderPage,
  OrderViewSchema,
  PlaceOrderBody,
} from './order-schemas';

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
          'This request was not accepted: ORDER_PENDING_MAX orders are in progress (type urn:saga:problem:overloaded), ORDER_QUEUE_MAX wait for a write, or the database is unreachable (type urn:saga:problem:unavailable). Retry after Retry-After with the same Idempotency-Key: an order this key already placed is answered, never placed twice',
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
