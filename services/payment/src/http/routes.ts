import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { Cents, CustomerId, DeclineReason } from '@saga/common/contracts/catalog';
import { notFound } from '@saga/common/messaging/errors';
import { parseRequest } from '@saga/common/http/app';
import { apiRoutes, openApiDocument, type ApiOperation } from '@saga/common/http/openapi';
import type { Db } from '@saga/common/db/sql';
import { findAccount, listPayments, upsertAccount } from '../db/payment-repository';

const PutAccountBody = z.strictObject({ balanceCents: Cents });
const CustomerParams = z.object({ customerId: CustomerId });
const PaymentsQuery = z.strictObject({
  orderId: z.string().uuid().optional().meta({ description: 'Only the attempts for this order' }),
  customerId: CustomerId.optional().meta({ description: 'Only the attempts of this customer (when no orderId)' }),
  limit: z.coerce.number().int().min(1).max(500).default(100).meta({ description: 'At most this many attempts' }),
});
/** On the public port a list names its order or customer: the unfiltered list is administration. */
const FilteredPaymentsQuery = PaymentsQuery.refine((q) => q.orderId !== undefined || q.customerId !== undefined, {
  message: 'orderId or customerId is required',
  path: ['orderId'],
});

export const Account = z
  .object({ customerId: CustomerId, balanceCents: Cents })
  .meta({ id: 'Account', description: "A customer's account" });
const Payment = z
  .object({
    paymentId: z.string().uuid(),
    orderId: z.string().uuid(),
    customerId: CustomerId,
    amountCents: Cents,
    status: z.enum(['AUTHORIZED', 'DECLINED']),
    reason: DeclineReason.nullable().meta({ description: 'Why it was declined; null when authorized' }),
    createdAt: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'Payment', description: 'One payment attempt (one per order)' });
const PaymentList = z.object({ payments: z.array(Payment) }).meta({ id: 'PaymentList' });

const putAccount: ApiOperation = {
  method: 'put',
  path: '/accounts/:customerId',
  operationId: 'putAccount',
  summary: 'Create an account or set its balance (reference data: no event)',
  tags: ['accounts'],
  params: CustomerParams,
  body: PutAccountBody,
  responses: { 200: { description: 'The account as stored', schema: Account } },
};
const getAccount: ApiOperation = {
  method: 'get',
  path: '/accounts/:customerId',
  operationId: 'getAccount',
  summary: "A customer's balance",
  tags: ['accounts'],
  params: CustomerParams,
  responses: {
    200: { description: 'The account', schema: Account },
    404: { description: 'No account for this customer (type urn:saga:problem:not-found)' },
  },
};
const listPaymentsOp = (query: z.ZodObject, summary: string): ApiOperation => ({
  method: 'get',
  path: '/payments',
  operationId: 'listPayments',
  summary,
  tags: ['payments'],
  query,
  responses: { 200: { description: 'The attempts', schema: PaymentList } },
});

/** The public HTTP contract of the payment service, for its OpenAPI document. */
export const paymentApi: ApiOperation[] = [
  listPaymentsOp(FilteredPaymentsQuery, 'Payment attempts of one order or one customer'),
];
/** Account administration and unfiltered lists, on the admin listener (ADMIN_PORT). */
export const paymentAdminApi: ApiOperation[] = [
  putAccount,
  getAccount,
  listPaymentsOp(PaymentsQuery, 'Payment attempts, by order, by customer, or all'),
];

export const paymentOpenApi = openApiDocument(
  {
    title: 'payment',
    version: '1.0.0',
    port: 8002,
    description:
      'Payment attempts. Payments are authorized or declined by the saga (on StockReserved), not over HTTP. Accounts and balances are on the admin listener only.',
  },
  paymentApi,
);

export const paymentAdminOpenApi = openApiDocument(
  {
    title: 'payment (admin)',
    version: '1.0.0',
    port: 8102,
    admin: true,
    description: 'Accounts: read and set balances, list every payment. Only on the admin listener (ADMIN_PORT).',
  },
  paymentAdminApi,
);

/** `GET /payments?orderId=` or `?customerId=`. Balances are administration: `GET /accounts/:customerId` is admin only. */
export function paymentRoutes(db: Db): Router {
  const r = Router();
  r.use(apiRoutes(paymentOpenApi));
  r.get('/payments', listPaymentsHandler(db, FilteredPaymentsQuery));
  return r;
}

/** `PUT /accounts/:customerId`, `GET /accounts/:customerId`, `GET /payments`. */
export function paymentAdminRoutes(db: Db): Router {
  const r = Router();
  r.use(apiRoutes(paymentAdminOpenApi));
  r.put('/accounts/:customerId', async (req, res) => {
    const { customerId } = parseRequest(CustomerParams, req.params, 'params');
    const { balanceCents } = parseRequest(PutAccountBody, req.body, 'body');
    res.json(await upsertAccount(db, { customerId, balanceCents }));
  });
  r.get('/accounts/:customerId', getAccountHandler(db));
  r.get('/payments', listPaymentsHandler(db, PaymentsQuery));
  return r;
}

const getAccountHandler =
  (db: Db): RequestHandler =>
  async (req, res) => {
    const { customerId } = parseRequest(CustomerParams, req.params, 'params');
    const account = await findAccount(db, customerId);
    if (!account) throw notFound('account', customerId);
    res.json(account);
  };

const listPaymentsHandler =
  (db: Db, schema: typeof PaymentsQuery): RequestHandler =>
  async (req, res) => {
    const q = parseRequest(schema, req.query, 'query');
    res.json({ payments: await listPayments(db, q) });
  };
