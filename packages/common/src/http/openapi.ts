/**
 * OpenAPI 3.1 documents built from the zod schemas that validate each service's requests, with zod 4's own JSON
 * Schema output (`z.toJSONSchema`). OpenAPI 3.1's schema dialect is JSON Schema 2020-12, which is what zod emits,
 * so no translation layer (and no extra dependency) stands between a route's validation and its documentation.
 * Schemas named with `.meta({ id })` become `components.schemas` entries.
 */
import { Router } from 'express';
import { z } from 'zod';
import { apiPage } from './api-page';
import { Problem, PROBLEM_CONTENT_TYPE } from './problem';

type Json = Record<string, unknown>;

export type ApiResponse = {
  description: string;
  /** The JSON body (`application/json`, or `contentType`); none for an empty answer. */
  schema?: z.ZodType;
  contentType?: string;
  /** A body that is not JSON (`text/event-stream`, Prometheus text): its JSON Schema as is. */
  rawSchema?: Json;
  headers?: Record<string, { description: string; schema: Json; required?: boolean }>;
  /** `x-` members of the media type (e.g. the events of a server-sent stream). */
  extensions?: Record<string, unknown>;
};

export type ApiOperation = {
  method: 'get' | 'put' | 'post';
  /** The express route path (`/orders/:orderId`); the document spells it `/orders/{orderId}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags?: string[];
  params?: z.ZodObject;
  query?: z.ZodObject;
  headers?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, ApiResponse>;
  /** Reads nothing from a database (no 503). */
  noDatabase?: boolean;
};

const REQUEST_ID = {
  description:
    'Id of this request (the one sent in x-request-id when valid, else generated), in every log line about it',
  schema: { type: 'string' },
};

/** Headers every operation accepts: W3C Trace Context and a request id. */
const COMMON_HEADERS = [
  {
    name: 'traceparent',
    in: 'header',
    required: false,
    description:
      'W3C Trace Context (https://www.w3.org/TR/trace-context/): the request continues this trace, and the events it causes carry it',
    schema: { type: 'string', pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$' },
  },
  {
    name: 'x-request-id',
    in: 'header',
    required: false,
    description: 'Your id for this request (1-128 of letters, digits, _ . : -), echoed back',
    schema: { type: 'string' },
  },
];

const Readiness = z
  .object({
    status: z.enum(['ready', 'not ready']),
    checks: z
      .record(z.string(), z.boolean())
      .meta({ description: 'Each dependency (database, broker) and whether it answers' }),
  })
  .meta({ id: 'Readiness' });

/** What every process serves beside its own routes (createOpsRouter, and this document). */
const OPS_OPERATIONS: ApiOperation[] = [
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This document',
    tags: ['operations'],
    noDatabase: true,
    responses: { 200: { description: 'OpenAPI 3.1', rawSchema: { type: 'object' } } },
  },
  {
    method: 'get',
    path: '/docs',
    operationId: 'getApiPage',
    summary: 'This document as a page to read',
    tags: ['operations'],
    noDatabase: true,
    responses: { 200: { description: 'HTML', contentType: 'text/html', rawSchema: { type: 'string' } } },
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    summary: 'Liveness: the process runs and its event loop turns',
    tags: ['operations'],
    noDatabase: true,
    responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    summary: 'Readiness: the database and the broker answer, and the process is not shutting down',
    tags: ['operations'],
    noDatabase: true,
    responses: {
      200: { description: 'Ready', schema: Readiness },
      503: { description: 'Not ready: the failing checks are false', schema: Readiness },
    },
  },
];

/** What an admin listener serves beside those (createMetricsRouter). */
const ADMIN_OPERATIONS: ApiOperation[] = [
  {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    tags: ['operations'],
    noDatabase: true,
    responses: {
      200: {
        description: 'Prometheus text exposition format',
        contentType: 'text/plain',
        rawSchema: { type: 'string' },
      },
    },
  },
];

/** `/orders/:orderId` -> `/orders/{orderId}`. */
export const openApiPath = (expressPath: string) => expressPath.replace(/:([A-Za-z_]\w*)/g, '{$1}');

/**
 * The OpenAPI 3.1 document of a service's operations, with the error answers every operation can give. `admin`: the
 * document of an admin listener, which also serves `/metrics`.
 */
export function openApiDocument(
  info: { title: string; version: string; description: string; port: number; admin?: boolean },
  operations: readonly ApiOperation[],
): Json {
  const components: Record<string, Json> = {};
  const schemaOf = (schema: z.ZodType, io: 'input' | 'output') => convert(schema, io, components);
  const problem = (description: string, retry = false) => ({
    description,
    headers: {
      'x-request-id': REQUEST_ID,
      ...(retry
        ? { 'Retry-After': { description: 'Seconds to wait before retrying', schema: { type: 'integer' } } }
        : {}),
    },
    content: { [PROBLEM_CONTENT_TYPE]: { schema: schemaOf(Problem, 'output') } },
  });
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of [...operations, ...OPS_OPERATIONS, ...(info.admin ? ADMIN_OPERATIONS : [])]) {
    const parameters = [
      ...parametersOf(op.params, 'path', schemaOf),
      ...parametersOf(op.query, 'query', schemaOf),
      ...parametersOf(op.headers, 'header', schemaOf),
      ...COMMON_HEADERS,
    ];
    const responses: Record<string, Json> = {};
    for (const [status, r] of Object.entries(op.responses)) {
      const body = r.schema ? schemaOf(r.schema, 'output') : r.rawSchema;
      responses[status] = {
        description: r.description,
        headers: { 'x-request-id': REQUEST_ID, ...(r.headers ?? {}) },
        ...(body
          ? { content: { [r.contentType ?? 'application/json']: { schema: body, ...(r.extensions ?? {}) } } }
          : {}),
      };
    }
    const takesInput = op.params || op.query || op.headers || op.body;
    if (takesInput && !responses[400])
      responses[400] = problem(
        'Invalid input: `errors` names each field (type urn:saga:problem:validation); nothing was written',
      );
    if (op.body) {
      responses[413] ??= problem('The body is over the size limit (HTTP_BODY_LIMIT)');
      responses[415] ??= problem('The body is not application/json');
    }
    if (!op.noDatabase)
      responses[503] ??= problem(
        'The database is unreachable (type urn:saga:problem:unavailable); retry after Retry-After seconds',
        true,
      );
    responses[500] ??= problem('Unexpected error; no detail is disclosed');
    for (const [status, r] of Object.entries(op.responses)) {
      // A documented error status answers a problem object unless the operation says otherwise; 429 and 503 say
      // when to come back (Retry-After).
      if (Number(status) >= 400 && !r.schema && !r.rawSchema)
        responses[status] = problem(r.description, status === '429' || status === '503');
    }
    const path = openApiPath(op.path);
    paths[path] ??= {};
    paths[path][op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      ...(op.tags ? { tags: op.tags } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(op.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(op.body, 'input') } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: info.title, version: info.version, description: info.description },
    servers: [{ url: `http://localhost:${info.port}`, description: 'npm start or docker compose' }],
    paths,
    components: { schemas: components },
  };
}

function parametersOf(
  schema: z.ZodObject | undefined,
  where: 'path' | 'query' | 'header',
  schemaOf: (s: z.ZodType, io: 'input' | 'output') => Json,
): Json[] {
  if (!schema) return [];
  const json = schemaOf(schema, 'input');
  const properties = (json.properties ?? {}) as Record<string, Json>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name: where === 'header' ? headerName(name) : name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

/** `idempotency-key` -> `Idempotency-Key` (express lowercases header names; the document shows the usual spelling). */
const headerName = (name: string) =>
  name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());

/** zod -> JSON Schema 2020-12, its `$defs` moved to the document's components. */
function convert(schema: z.ZodType, io: 'input' | 'output', components: Record<string, Json>): Json {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  const { $schema: _dialect, $defs, ...rest } = json;
  for (const [name, def] of Object.entries(($defs ?? {}) as Record<string, Json>))
    components[name] = refsToComponents(def) as Json;
  return refsToComponents(rest) as Json;
}

function refsToComponents(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(refsToComponents);
  if (v === null || typeof v !== 'object') return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) {
    out[k] =
      k === '$ref' && typeof x === 'string' ? x.replace('#/$defs/', '#/components/schemas/') : refsToComponents(x);
  }
  return out;
}

/** `GET /openapi.json` (the document) and `GET /docs` (the page), both made once. */
export function apiRoutes(doc: Json): Router {
  const page = apiPage(doc);
  const r = Router();
  r.get('/openapi.json', (_req, res) => void res.json(doc));
  r.get('/docs', (_req, res) => void res.type('html').send(page));
  return r;
}
