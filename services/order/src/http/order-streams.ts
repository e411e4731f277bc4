import type { Request, Response } from 'express';
import { HttpProblemError, unavailable } from '@saga/common/http/http-error';
import type { Logger } from '@saga/common/runtime/logger';
import type { OrderView } from '../db/order-repository';
import type { OrderNotifier } from './order-notifier';

type Listener = { send: (view: OrderView) => void; end: () => void };

/** The streams of one order on this replica: one subscription, one reload per change, fanned out to each. */
type Hub = {
  orderId: string;
  refs: number;
  listeners: Set<Listener>;
  latest?: OrderView;
  ready: Promise<void>;
  unsubscribe?: () => Promise<void>;
  reloading: boolean;
  again: boolean;
};

export type StreamLimits = { perCaller: number; total: number };

/**
 * Order event streams of one replica. All streams of an order share a hub: one watch, and one reload of the order
 * per notification whatever the number of streams. A reload that fails ends the order's streams (the client
 * reconnects, as EventSource does, and gets the history again) rather than leaving them without their `end`.
 */
export function createOrderStreams(
  notifier: OrderNotifier,
  load: (orderId: string) => Promise<OrderView | undefined>,
  log: Logger,
  limits: StreamLimits,
) {
  const hubs = new Map<string, Hub>();
  const perCaller = new Map<string, number>();
  let total = 0;

  function wake(hub: Hub, ending: boolean) {
    if (ending) {
      for (const l of [...hub.listeners]) l.end();
      return;
    }
    if (hub.reloading) return void (hub.again = true);
    hub.reloading = true;
    void (async () => {
      try {
        do {
          hub.again = false;
          const view = await load(hub.orderId);
          if (!view) continue;
          if (!hub.latest || view.history.length >= hub.latest.history.length) hub.latest = view;
          for (const l of [...hub.listeners]) l.send(view);
        } while (hub.again);
      } catch (err) {
        log.warn({ err, orderId: hub.orderId }, 'order stream could not reload the order; ending its streams');
        for (const l of [...hub.listeners]) l.end();
      } finally {
        hub.reloading = false;
      }
    })();
  }

  async function acquire(orderId: string): Promise<Hub> {
    let hub = hubs.get(orderId);
    if (!hub) {
      const h: Hub = {
        orderId,
        refs: 0,
        listeners: new Set(),
        ready: Promise.resolve(),
        reloading: false,
        again: false,
      };
      // Subscribe before the first read so that no change between the two is missed.
      h.ready = (async () => {
        h.unsubscribe = await notifier.subscribe(orderId, (ending) => wake(h, ending));
        const first = await load(orderId);
        if (first && (!h.latest || first.history.length >= h.latest.history.length)) h.latest = first;
      })();
      hubs.set(orderId, (hub = h));
    }
    hub.refs++;
    try {
      await hub.ready;
    } catch (err) {
      release(hub);
      throw err;
    }
    return hub;
  }

  function release(hub: Hub) {
    if (--hub.refs > 0) return;
    if (hubs.get(hub.orderId) === hub) hubs.delete(hub.orderId);
    void hub.ready
      .catch(() => undefined)
      .then(() => hub.unsubscribe?.())
      .catch((err: unknown) => log.warn({ err, orderId: hub.orderId }, 'could not unsubscribe an order stream'));
  }

  /** Take a place for a stream of `caller`: 429 beyond its own limit, 503 when the replica is full. */
  function admit(caller: string): () => void {
    if (total >= limits.total) throw unavailable('too many order streams are open on this replica, try again', 5);
    const mine = perCaller.get(caller) ?? 0;
    if (mine >= limits.perCaller)
      throw new HttpProblemError(429, `at most ${limits.perCaller} order streams per caller`, {
        type: 'urn:saga:problem:rate-limited',
        headers: { 'Retry-After': '5' },
      });
    total++;
    perCaller.set(caller, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      total--;
      const n = (perCaller.get(caller) ?? 1) - 1;
      if (n > 0) perCaller.set(caller, n);
      else perCaller.delete(caller);
    };
  }

  /**
   * Serve the stream of `orderId` to `caller` until the order is final, the client leaves, or the replica stops.
   * Throws 404 (before anything is written) when the order is not the caller's.
   */
  async function serve(req: Request, res: Response, orderId: string, caller: string, heartbeatMs: number) {
    const leave = admit(caller);
    // Registered before any wait: a client that leaves during setup is noticed, and nothing of it outlives the call.
    let gone = false;
    const onClose = () => (gone = true);
    req.on('close', onClose);
    try {
      const hub = await acquire(orderId);
      try {
        if (!hub.latest || hub.latest.customerId !== caller) throw notFoundProblem(orderId);
        if (gone) return;
        // Checked in the same tick as the stream's listener is attached: a stop ends every listener it finds, and
        // a stream that would start after it is refused, so none outlives the stop.
        if (notifier.stopped()) throw unavailable('this replica is stopping; open the stream again', 1);
        await pipe(req, res, hub, heartbeatMs);
      } finally {
        release(hub);
      }
    } finally {
      req.off('close', onClose);
      leave();
    }
  }

  return { serve, open: () => ({ streams: total, orders: hubs.size }) };
}

const notFoundProblem = (orderId: string) =>
  new HttpProblemError(404, `order ${orderId} not found`, { type: 'urn:saga:problem:not-found' });

/**
 * Server-sent events: every history entry so far, then each new one as it commits; a final `end` event with the
 * order once it is CONFIRMED or CANCELLED, then the stream closes.
 */
async function pipe(req: Request, res: Response, hub: Hub, heartbeatMs: number): Promise<void> {
  res.status(200).set({
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let sent = 0;
  const write = (view: OrderView) => {
    for (; sent < view.history.length; sent++) {
      const h = view.history[sent]!;
      res.write(`id: ${sent + 1}\nevent: ${h.type}\ndata: ${JSON.stringify({ ...h, orderId: view.orderId })}\n\n`);
    }
    if (view.status === 'PENDING') return false;
    res.write(`event: end\ndata: ${JSON.stringify(view)}\n\n`);
    return true;
  };
  if (write(hub.latest!)) return void res.end();
  await new Promise<void>((resolve) => {
    const listener: Listener = {
      send: (view) => {
        if (write(view)) listener.end();
      },
      end: () => {
        hub.listeners.delete(listener);
        clearInterval(beat);
        req.off('close', listener.end);
        if (!res.writableEnded) res.end();
        resolve();
      },
    };
    const beat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    req.on('close', listener.end);
    hub.listeners.add(listener);
    // A change that the hub loaded while this stream was being set up.
    if (hub.latest) listener.send(hub.latest);
  });
}
