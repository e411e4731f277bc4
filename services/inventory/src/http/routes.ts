import { Router } from 'express';
import { z } from 'zod';
import { Cents, Sku } from '@saga/common/contracts';
import { notFound } from '@saga/common/errors';
import { parseRequest } from '@saga/common/http';
import type { Tx } from '@saga/common/outbox';
import { findProduct, listProducts, upsertProduct } from '../db/stock-repository';

export const PutProductBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  priceCents: Cents,
  stock: z.number().int().nonnegative().max(1_000_000_000),
});
const SkuParams = z.object({ sku: Sku });
const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: Sku.optional(),
});

/** `PUT /products/:sku`, `GET /products/:sku`, `GET /products`. Products are reference data: no event. */
export function inventoryRoutes(db: Tx): Router {
  const r = Router();
  r.put('/products/:sku', async (req, res) => {
    const { sku } = parseRequest(SkuParams, req.params, 'params');
    const body = parseRequest(PutProductBody, req.body, 'body');
    const product = await upsertProduct(db, { sku, ...body });
    req.log.info({ sku }, 'product saved');
    res.status(200).json(product);
  });
  r.get('/products/:sku', async (req, res) => {
    const { sku } = parseRequest(SkuParams, req.params, 'params');
    const product = await findProduct(db, sku);
    if (!product) throw notFound('product', sku);
    res.json(product);
  });
  r.get('/products', async (req, res) => {
    const q = parseRequest(ListQuery, req.query, 'query');
    const items = await listProducts(db, q.limit, q.after);
    res.json({ products: items, next: items.length === q.limit ? items[items.length - 1]!.sku : null });
  });
  return r;
}
