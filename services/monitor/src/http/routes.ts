import { Router } from 'express';
import { z } from 'zod';
import { notFound } from '@saga/common/errors';
import { parseRequest } from '@saga/common/http';
import type pg from 'pg';
import { timeline } from '../domain/saga';
import { PAGE_HTML, PAGE_SCRIPT } from './page';
import { deadLettersOf, getSaga, listSagas, pendingStats, statusCounts } from '../db/saga-repository';

const IdParams = z.object({ orderId: z.string().min(1).max(200) });
const ListQuery = z.strictObject({
  state: z.enum(['pending', 'stuck', 'confirmed', 'cancelled']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  after: z.coerce.number().int().min(1).optional(),
});

/** The monitor's HTTP API (read only) and its page. */
export function monitorRoutes(pool: pg.Pool, stuckAfterMs: number): Router {
  const r = Router();
  r.get('/', (_req, res) => {
    res.type('html').send(PAGE_HTML);
  });
  r.get('/monitor.js', (_req, res) => {
    res.type('application/javascript').send(PAGE_SCRIPT);
  });

  r.get('/sagas', async (req, res) => {
    const q = parseRequest(ListQuery, req.query, 'query');
    const sagas = await listSagas(pool, { ...q, stuckAfterMs });
    const dead = await deadLettersOf(pool, sagas.filter((s) => s.status === 'PENDING').map((s) => s.orderId));
    res.json({
      sagas: sagas.map((s) => ({ ...s, deadLetters: dead.get(s.orderId) ?? [] })),
      next: sagas.length === q.limit ? sagas[sagas.length - 1]!.seq : null,
    });
  });

  r.get('/sagas/:orderId', async (req, res) => {
    const { orderId } = parseRequest(IdParams, req.params, 'params');
    const found = await getSaga(pool, orderId, stuckAfterMs);
    if (!found) throw notFound('saga', orderId);
    const { saga, events, deadLetters } = found;
    res.json({
      ...saga,
      deadLetters: deadLetters.map((d) => ({ ...d, at: d.at.toISOString() })),
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

  r.get('/stats', async (_req, res) => {
    const [counts, pending] = await Promise.all([statusCounts(pool), pendingStats(pool, stuckAfterMs)]);
    res.json({ ...counts, stuck: pending.stuck, oldestPendingSeconds: pending.oldestPendingSeconds, stuckAfterMs });
  });
  return r;
}
