import { Router } from 'express';
import { z } from 'zod';
import { Cents, CustomerId } from '@saga/common/contracts';
import { notFound } from '@saga/common/errors';
import { parseRequest } from '@saga/common/http';
import type { Tx } from '@saga/common/outbox';
import { findAccount, listPayments, upsertAccount } from '../db/payment-repository';

const PutAccountBody = z.strictObject({ balanceCents: Cents });
const CustomerParams = z.object({ customerId: CustomerId });
const PaymentsQuery = z.strictObject({
  orderId: z.string().uuid().optional(),
  customerId: CustomerId.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/** `PUT /accounts/:customerId`, `GET /accounts/:customerId`, `GET /payments?orderId=`. */
export function paymentRoutes(db: Tx): Router {
  const r = Router();
  r.put('/accounts/:customerId', async (req, res) => {
    const { customerId } = parseRequest(CustomerParams, req.params, 'params');
    const { balanceCents } = parseRequest(PutAccountBody, req.body, 'body');
    res.json(await upsertAccount(db, { customerId, balanceCents }));
  });
  r.get('/accounts/:customerId', async (req, res) => {
    const { customerId } = parseRequest(CustomerParams, req.params, 'params');
    const account = await findAccount(db, customerId);
    if (!account) throw notFound('account', customerId);
    res.json(account);
  });
  r.get('/payments', async (req, res) => {
    const q = parseRequest(PaymentsQuery, req.query, 'query');
    res.json({ payments: await listPayments(db, q) });
  });
  return r;
}
