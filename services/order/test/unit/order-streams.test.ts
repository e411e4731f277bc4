/**
 * Order event streams while the replica stops: a stream whose set-up ends after the stop began is refused (it would
 * never be told to end, and the HTTP close would wait for it), and one already open ends with the stop.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import pino from 'pino';
import { HttpProblemError } from '@saga/common/http/http-error';
import { listen } from '@saga/common/runtime/ops';
import { settleWithin } from '@saga/common/runtime/settle';
import type { OrderView } from '../../src/db/order-repository';
import type { OrderNotifier } from '../../src/http/order-notifier';
import { createOrderStreams } from '../../src/http/order-streams';

const at = new Date().toISOString();
const view = (orderId: string): OrderView => ({
  orderId,
  customerId: 'customer-1',
  status: 'PENDING',
  reason: null,
  totalCents: null,
  items: [],
  history: [{ type: 'OrderPlaced', at }],
  createdAt: at,
  updatedAt: at,
});

/** A notifier whose subscriptions wait for `open()` (the database round trips of a real one). */
function gatedNotifier() {
  const listeners = new Set<(ending: boolean) => void>();
  let stopped = false;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let entered!: () => void;
  const subscribing = new Promise<void>((r) => (entered = r));
  const notifier: OrderNotifier = {
    async subscribe(_id, onChange) {
      entered();
      await gate;
      listeners.add(onChange);
      return async () => void listeners.delete(onChange);
    },
    async stop() {
      stopped = true;
      for (const f of [...listeners]) f(true);
    },
    stopped: () => stopped,
  };
  return { notifier, open, subscribing };
}

async function serveStreams(notifier: OrderNotifier) {
  const streams = createOrderStreams(notifier, async (id) => view(id), pino({ level: 'silent' }), {
    perCaller: 5,
    total: 10,
  });
  const app = express();
  app.get('/orders/:id/events', (req, res, next) =>
    streams.serve(req, res, req.params.id, 'customer-1', 60_000).catch(next),
  );
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (!(err instanceof HttpProblemError)) return void res.status(500).end();
    res
      .status(err.status)
      .set(err.opts.headers ?? {})
      .end();
  });
  const { server, close } = await listen(app, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/orders/o-1/events`, close };
}

describe('order event streams while the replica stops', () => {
  it('refuses with 503 a stream whose set-up ends after the stop began, and nothing stays open', async () => {
    const { notifier, open, subscribing } = gatedNotifier();
    const { url, close } = await serveStreams(notifier);
    try {
      const answer = fetch(url);
      await subscribing;
      await notifier.stop();
      open();
      const res = await answer;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
    } finally {
      await settleWithin(close(), 5_000, 'the HTTP close'); // a stream left open would hold it up
    }
  });

  it('ends a stream that was open when the stop began', async () => {
    const { notifier, open } = gatedNotifier();
    open();
    const { url, close } = await serveStreams(notifier);
    try {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      const body = res.text();
      await notifier.stop();
      expect(await body).toContain('event: OrderPlaced');
    } finally {
      await close();
    }
  });
});
