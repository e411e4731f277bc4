import { Router } from 'express';
import { z } from 'zod';
import { notFound } from '@saga/common/errors';
import { parseRequest } from '@saga/common/http';
import type pg from 'pg';
import type { CatchUp } from '../catch-up';
import { timeline } from '../domain/saga';
import { deadLettersOf, getSaga, listSagas, stats } from '../db/saga-repository';
import { PAGE_HTML, PAGE_SCRIPT } from './page';

const IdParams = z.object({ orderId: z.string().min(1).max(200) });
const ListQuery = z.strictObject({
  state: z.enum(['pending', 'stuck', 'confirmed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: z.coerce.number().int().min(1).optional(),
});

/** The monitor's HTTP API (read only) and its page. */
export function monitorRoutes(pool: pg.Pool, stuckAfterMs: number, catchUp: CatchUp): Router {
  const r = Router();
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
    const dead = await deadLettersOf(pool, sagas.filter((s) => !s.settled));
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
      deadLetters: deadLetters.map((d) => ({ queue: d.queue, messageId: d.messageId, type: d.type, reason: d.reason, error: d.error, at: d.at.toISOString() })),
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
      cached = { at: Date.now(), body: stats(pool, s).then((st) => ({ ...st, stuckAfterMs, asOf: s.asOf.toISOString(), behind: catchUp.behind() })) };
      cached.body.catch(() => (cached = undefined));
    }
    res.json(await cached.body);
  });
  return r;
}
