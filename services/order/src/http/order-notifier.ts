import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { endWithin } from '@saga/common/db/pg';
import { reconnectLoop } from '@saga/common/runtime/lifecycle';
import type { Logger } from '@saga/common/runtime/logger';
import {
  awaitWriters,
  dropWatches,
  ORDER_CHANNEL,
  touchWatches,
  unwatchOrder,
  watchOrder,
} from '../db/order-repository';

export type OrderNotifier = {
  /**
   * Call `onChange` whenever the order may have changed (`ending`: the replica is shutting down). Resolves once
   * every change committed from then on will be announced; answers the unsubscribe function.
   */
  subscribe: (orderId: string, onChange: (ending: boolean) => void) => Promise<() => Promise<void>>;
  stop: () => Promise<void>;
  /**
   * Stop has begun: no change will be announced any more. A stream must not start then; it would never end, and the
   * replica's HTTP close would wait for it.
   */
  stopped: () => boolean;
};

/**
 * Every replica marks the watches of its open streams as alive every WATCH_REFRESH_MS and drops any watch not
 * marked for STALE_WATCH_SECONDS: the leftovers of a replica that died go within minutes, whenever it happened.
 */
const WATCH_REFRESH_MS = 60_000;
/** The LISTEN connection's connect and end bound, and its first keepalive probe after this much silence. */
const NOTIFIER_TIMEOUT_MS = 5_000;
const NOTIFIER_KEEPALIVE_MS = 10_000;
const STALE_WATCH_SECONDS = 300;

/**
 * One LISTEN connection per order replica. A writer of an order sends NOTIFY in its transaction only when the
 * order is watched (a row in order_watch, one per open stream), because NOTIFY holds a
 * database-wide lock until commit: unwatched orders, nearly all of them, cost writers nothing. Every replica
 * hears every notification, whichever replica or consumer made the change. After a reconnect every subscriber is
 * told to look again, since notifications sent meanwhile were missed.
 */
export function createOrderNotifier(url: string, pool: pg.Pool, log: Logger): OrderNotifier {
  const subscribers = new Map<string, Set<(ending: boolean) => void>>();
  let client: pg.Client | undefined;
  const abort = new AbortController();
  let stopped = false;
  const everyone = (ending = false) => {
    for (const set of subscribers.values()) for (const f of set) f(ending);
  };

  async function session() {
    // Bounded connect and end, so that a link gone silent cannot hold a reconnect or a stop up for TCP's minutes; TCP
    // keepalive probes (the first after 10 s of silence, then the system's interval and count) end a LISTEN that
    // would otherwise hear nothing for good.
    const c = new pg.Client({
      connectionString: url,
      application_name: 'order notifier',
      keepAlive: true,
      keepAliveInitialDelayMillis: NOTIFIER_KEEPALIVE_MS,
      connectionTimeoutMillis: NOTIFIER_TIMEOUT_MS,
    });
    client = c;
    try {
      const ended = new Promise<void>((resolve) => {
        c.on('error', (err) => {
          log.warn({ err }, 'order notifier connection failed');
          resolve();
        });
        c.on('end', () => resolve());
      });
      await c.connect();
      c.on('notification', (n) => {
        if (n.channel !== ORDER_CHANNEL || !n.payload) return;
        for (const f of subscribers.get(n.payload) ?? []) f(false);
      });
      await c.query(`LISTEN ${ORDER_CHANNEL}`);
      everyone();
      await ended;
    } finally {
      await endWithin(c, NOTIFIER_TIMEOUT_MS);
    }
  }
  const loop = reconnectLoop(session, { what: 'order notifier', log, signal: abort.signal, capMs: 5000 });
  const live = new Set<string>();
  const upkeep = async () => {
    await touchWatches(pool, [...live]);
    await dropWatches(pool, STALE_WATCH_SECONDS);
  };
  const keepWatches = () => upkeep().catch((err) => log.warn({ err }, 'could not keep the order watches'));
  void keepWatches();
  const refresher = setInterval(keepWatches, WATCH_REFRESH_MS);
  refresher.unref();

  return {
    async subscribe(id, onChange) {
      // Notifications spell the id as PostgreSQL prints a uuid: in lower case.
      const orderId = id.toLowerCase();
      let set = subscribers.get(orderId);
      if (!set) subscribers.set(orderId, (set = new Set()));
      set.add(onChange);
      // A watch row per subscription: two streams of one order on this replica never remove each other's.
      const watcher = randomUUID();
      live.add(watcher);
      const unsubscribe = async () => {
        live.delete(watcher);
        set.delete(onChange);
        if (set.size === 0 && subscribers.get(orderId) === set) subscribers.delete(orderId);
        await unwatchOrder(pool, orderId, watcher).catch((err) =>
          log.warn({ err, orderId }, 'could not remove order watch'),
        );
      };
      try {
        await watchOrder(pool, orderId, watcher);
        await awaitWriters(pool, orderId);
      } catch (err) {
        await unsubscribe();
        throw err;
      }
      return unsubscribe;
    },
    stopped: () => stopped,
    async stop() {
      stopped = true;
      clearInterval(refresher);
      abort.abort();
      everyone(true);
      if (client) await endWithin(client, NOTIFIER_TIMEOUT_MS);
      await loop;
    },
  };
}
