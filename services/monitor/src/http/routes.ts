import { Router } from 'express';
import { z } from 'zod';
import { Identifier } from '@saga/common/contracts/text';
import { notFound } from '@saga/common/messaging/errors';
import { parseRequest } from '@saga/common/http/app';
import { apiRoutes, openApiDocument, type ApiOperation } from '@saga/common/http/openapi';
import type pg from 'pg';
import type { CatchUp } from '../catch-up';
import { timeline } from '../domain/saga';
import { deadLettersOf, getSaga, listSagas, stats } from '../db/saga-repository';
import { PAGE_HTML, PAGE_SCRIPT } from './page';

const IdParams = z.object({
  orderId: Identifier(200).meta({ description: "The order id (the saga's correlation id)" }),
});
const ListQuery = z.strictObject({
  state: z.enum(['pending', 'stuck', 'confirmed', 'cancelled']).optional().meta({
    description:
      'pending: not settled and not stuck; stuck: not settled and quiet for SAGA_STUCK_AFTER_MS; confirmed, cancelled: by outcome',
  }),
  limit: z.coerce.number().int().min(1).max(500).default(50).meta({ description: 'At most this many sagas' }),
  after: z.coerce.number().int().min(1).optional().meta({ description: 'The `next` of the previous page' }),
});

const Step = z
  .object({ service: z.string(), step: z.string(), events: z.array(z.string()) })
  .meta({ id: 'Step', description: 'Who must act next and which events would show it did' });
const DeadLetterNote = z
  .object({
    queue: z.string(),
    type: z.string().nullable(),
    reason: z.string().nullable(),
    at: z.iso.datetime({ offset: true }),
  })
  .meta({ id: 'DeadLetterNote', description: 'A message of this saga a consumer dead-lettered since its last event' });
const SagaFields = {
  orderId: z.string(),
  seq: z.number().int().meta({ description: "Arrival order (the list's keyset)" }),
  status: z.enum(['PENDING', 'CONFIRMED', 'CANCELLED']),
  reason: z.string().nullable(),
  startedAt: z.iso.datetime({ offset: true }).nullable(),
  finishedAt: z.iso.datetime({ offset: true }).nullable(),
  durationMs: z.number().nullable(),
  lastEventAt: z.iso.datetime({ offset: true }),
  lastEventType: z.string(),
  settled: z.boolean().meta({ description: 'Nothing more is due: final, and inventory followed up' }),
  waitingFor: Step.nullable(),
  events: z.number().int(),
  stuck: z.boolean(),
};
const SagaSummary = z.object({ ...SagaFields, deadLetters: z.array(DeadLetterNote) }).meta({ id: 'SagaSummary' });
const SagaPage = z.object({ sagas: z.array(SagaSummary), next: z.number().int().nullable() }).meta({ id: 'SagaPage' });
const TimelineEvent = z
  .object({
    type: z.string(),
    service: z.string(),
    messageId: z.string(),
    causationId: z.string().nullable(),
    traceparent: z.string().nullable(),
    reason: z.string().nullable(),
    at: z.iso.datetime({ offset: true }),
    offsetMs: z.number().meta({ description: "Time from the saga's first event" }),
    hopMs: z.number().nullable().meta({ description: 'Time from the event that caused it; null for the first' }),
  })
  .meta({ id: 'TimelineEvent' });
const SagaDetail = z
  .object({
    ...SagaFields,
    deadLetters: z.array(
      z.object({
        queue: z.string(),
        messageId: z.string(),
        type: z.string().nullable(),
        reason: z.string().nullable(),
        error: z.string().nullable(),
        at: z.iso.datetime({ offset: true }),
      }),
    ),
    events: z.array(TimelineEvent).meta({ description: 'In causal order' }),
  })
  .meta({ id: 'SagaDetail' });
const Stats = z
  .object({
    pending: z.number().int(),
    stuck: z.number().int(),
    oldestPendingSeconds: z.number(),
    confirmedLastHour: z.number().int(),
    cancelledLastHour: z.number().int(),
    stuckAfterMs: z.number().int(),
    asOf: z.iso.datetime({ offset: true }),
    behind: z.boolean(),
  })
  .meta({ id: 'Stats' });

/** The HTTP contract of the monitor (read only), for its OpenAPI document. */
export const monitorApi: ApiOperation[] = [
  {
    method: 'get',
    path: '/sagas',
    operationId: 'listSagas',
    summary: 'Sagas, newest first (stuck: longest quiet first), a page at a time',
    tags: ['sagas'],
    query: ListQuery,
    responses: { 200: { description: 'A page of sagas', schema: SagaPage } },
  },
  {
    method: 'get',
    path: '/sagas/:orderId',
    operationId: 'getSaga',
    summary: 'One saga: its state, what it waits for, and its events as a causal timeline',
    tags: ['sagas'],
    params: IdParams,
    responses: {
      200: { description: 'The saga', schema: SagaDetail },
      404: { description: 'The monitor has seen no event of this order (type urn:saga:problem:not-found)' },
    },
  },
  {
    method: 'get',
    path: '/stats',
    operationId: 'getStats',
    summary: 'Counts for the page: unsettled, stuck, the oldest unsettled age, outcomes of the last hour',
    tags: ['sagas'],
    responses: { 200: { description: 'The counts (cached for 2 s)', schema: Stats } },
  },
];

export const monitorOpenApi = openApiDocument(
  {
    title: 'monitor',
    version: '1.0.0',
    port: 8103,
    admin: true,
    description:
      'The saga monitor: every event of every saga, timelines, stuck sagas. Read only; an observer that sends no command. An operator UI: only on the admin listener (ADMIN_PORT).',
  },
  monitorApi,
);

/** The monitor's HTTP API (read only) and its page. */
export function monitorRoutes(pool: pg.Pool, stuckAfterMs: number, catchUp: CatchUp): Router {
  const r = Router();
  r.use(apiRoutes(monitorOpenApi));
  const staleness = () => ({ asOf: catchUp.asOf(), stuckAfterMs });

  r.get('/', (_req, res) => {
    res.type('html').send(PAGE_HTML);
  });
  r.get('/monitor.js', (_req, res) => {
    res.type('application/javascript').send(PAGE_SCRIPT);
  });

  r.get('/sagas', async (req, res) => {
    const q = parseRequest(ListQuery, req.query, 'query');
    const sagas = await listSagas(pool, { ...q, ...staleness() });
    const dead = await deadLettersOf(
      pool,
      sagas.filter((s) => !s.settled),
    );
    res.json({
      sagas: sagas.map((s) => ({ ...s, deadLetters: dead.get(s.orderId) ?? [] })),
      next: sagas.length === q.limit ? sagas[sagas.length - 1]!.seq : null,
    });
  });

  r.get('/sagas/:orderId', async (req, res) => {
    const { orderId } = parseRequest(IdParams, req.params, 'params');
    const found = await getSaga(pool, orderId, staleness());
    if (!found) throw notFound('saga', orderId);
    const { saga, events, deadLetters } = found;
    res.json({
      ...saga,
      deadLetters: deadLetters.map((d) => ({
        queue: d.queue,
        messageId: d.messageId,
        type: d.type,
        reason: d.reason,
        error: d.error,
        at: d.at.toISOString(),
      })),
      events: timeline(events).map((e) => ({
        type: e.type,
        service: e.service,
        messageId: e.messageId,
        causationId: e.causationId,
        traceparent: e.traceparent,
        reason: e.reason,
        at: e.at.toISOString(),
        offsetMs: e.offsetMs,
        hopMs: e.hopMs,
      })),
    });
  });

  // The page asks once a second per open tab: a short cache keeps that to one query whatever the number of tabs.
  let cached: { at: number; body: Promise<unknown> } | undefined;
  r.get('/stats', async (_req, res) => {
    if (!cached || Date.now() - cached.at > 2000) {
      const s = staleness();
      cached = {
        at: Date.now(),
        body: stats(pool, s).then((st) => ({
          ...st,
          stuckAfterMs,
          asOf: s.asOf.toISOString(),
          behind: catchUp.behind(),
        })),
      };
      cached.body.catch(() => (cached = undefined));
    }
    res.json(await cached.body);
  });
  return r;
}
