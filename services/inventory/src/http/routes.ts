import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { Cents, Sku } from '@saga/common/contracts/catalog';
import { Text } from '@saga/common/contracts/text';
import { notFound } from '@saga/common/messaging/errors';
import { parseRequest } from '@saga/common/http/app';
import { apiRoutes, openApiDocument, type ApiOperation } from '@saga/common/http/openapi';
import type { Db } from '@saga/common/db/sql';
import { findProduct, listProducts, upsertProduct } from '../db/stock-repository';

export const PutProductBody = z.strictObject({
  name: Text(200),
  priceCents: Cents,
  stock: z.number().int().nonnegative().max(1_000_000_000),
});
const SkuParams = z.object({ sku: Sku });
const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100).meta({ description: 'Page size' }),
  after: Sku.optional().meta({ description: 'The `next` of the previous page: the page starts after this sku' }),
});

export const Product = z
  .object({ sku: Sku, name: z.string(), priceCents: Cents, available: z.number().int(), reserved: z.number().int() })
  .meta({
    id: 'Product',
    description:
      'A product: unit price in cents; `available` can be reserved, `reserved` is held by orders in progress',
  });
const ProductPage = z
  .object({
    products: z.array(Product),
    next: Sku.nullable().meta({ description: 'Cursor of the next page (its `after`), null on the last page' }),
  })
  .meta({ id: 'ProductPage', description: 'Products in sku order' });

const putProduct: ApiOperation = {
  method: 'put',
  path: '/products/:sku',
  operationId: 'putProduct',
  summary: 'Create or replace a product (reference data: no event); `stock` becomes the available quantity',
  tags: ['products'],
  params: SkuParams,
  body: PutProductBody,
  responses: { 200: { description: 'The product as stored', schema: Product } },
};
const getProduct: ApiOperation = {
  method: 'get',
  path: '/products/:sku',
  operationId: 'getProduct',
  summary: 'One product with its available and reserved stock',
  tags: ['products'],
  params: SkuParams,
  responses: {
    200: { description: 'The product', schema: Product },
    404: { description: 'No product with this sku (type urn:saga:problem:not-found)' },
  },
};
const listProductsOp: ApiOperation = {
  method: 'get',
  path: '/products',
  operationId: 'listProducts',
  summary: 'Products in sku order, a page at a time (keyset pagination: pass `next` as `after`)',
  tags: ['products'],
  query: ListQuery,
  responses: { 200: { description: 'A page of products', schema: ProductPage } },
};

/** The public HTTP contract of the inventory service, for its OpenAPI document. */
export const inventoryApi: ApiOperation[] = [getProduct];
/** The administration of the catalogue, on the admin listener (ADMIN_PORT). */
export const inventoryAdminApi: ApiOperation[] = [putProduct, getProduct, listProductsOp];

export const inventoryOpenApi = openApiDocument(
  {
    title: 'inventory',
    version: '1.0.0',
    port: 8001,
    description:
      "Products, prices and stock. Stock is reserved, released and sold by the saga's events, not over HTTP.",
  },
  inventoryApi,
);

export const inventoryAdminOpenApi = openApiDocument(
  {
    title: 'inventory (admin)',
    version: '1.0.0',
    port: 8101,
    admin: true,
    description: 'The catalogue: set products and prices, list them. Only on the admin listener (ADMIN_PORT).',
  },
  inventoryAdminApi,
);

/** `GET /products/:sku`: what a customer may see of a product. */
export function inventoryRoutes(db: Db): Router {
  const r = Router();
  r.use(apiRoutes(inventoryOpenApi));
  r.get('/products/:sku', getProductHandler(db));
  return r;
}

/** `PUT /products/:sku`, `GET /products/:sku`, `GET /products`. Products are reference data: no event. */
export function inventoryAdminRoutes(db: Db): Router {
  const r = Router();
  r.use(apiRoutes(inventoryAdminOpenApi));
  r.put('/products/:sku', async (req, res) => {
    const { sku } = parseRequest(SkuParams, req.params, 'params');
    const body = parseRequest(PutProductBody, req.body, 'body');
    const product = await upsertProduct(db, { sku, ...body });
    req.log.info({ sku }, 'product saved');
    res.status(200).json(product);
  });
  r.get('/products/:sku', getProductHandler(db));
  r.get('/products', async (req, res) => {
    const q = parseRequest(ListQuery, req.query, 'query');
    const items = await listProducts(db, q.limit, q.after);
    res.json({ products: items, next: items.length === q.limit ? items[items.length - 1]!.sku : null });
  });
  return r;
}

const getProductHandler =
  (db: Db): RequestHandler =>
  async (req, res) => {
    const { sku } = parseRequest(SkuParams, req.params, 'params');
    const product = await findProduct(db, sku);
    if (!product) throw notFound('product', sku);
    res.json(product);
  };
