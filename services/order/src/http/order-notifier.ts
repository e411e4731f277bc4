import pg from 'pg';
import { backoffDelay, delay } from '@saga/common/lifecycle';
import type { Logger } from '@saga/common/logger';
import { ORDER_CHANNEL } from '../db/order-repository';

export type OrderNotifier = {
  /** Call `onChange` whenever the order may have changed (`ending`: the replica is shutting down); returns the unsubscribe function. */
  subscribe: (orderId: string, onChange: (ending: boolean) => void) => () => void;
  stop: () => Promise<void>;
};

/**
 * One LISTEN connection per order replica. Changes are announced by NOTIFY in the transaction that commits them,
 * so every replica hears every change, whichever replica or consumer made it. After a reconnect every subscriber is
 * told to look again, since notifications sent meanwhile were missed.
 */
export function createOrderNotifier(url: string, log: Logger): OrderNotifier {
  const subscribers = new Map<string, Set<(ending: boolean) => void>>();
  let client: pg.Client | undefined;
  let stopping = false;
  const abort = new AbortController();
  const everyone = (ending = false) => {
    for (const set of subscribers.values()) for (const f of set) f(ending);
  };

  async function run() {
    let attempt = 0;
    while (!stopping) {
      const c = new pg.Client({ connectionString: url, application_name: 'order notifier' });
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
        attempt = 0;
        everyone();
        await ended;
      } catch (err) {
        if (!stopping) log.warn({ err }, 'order notifier could not listen');
      }
      await c.end().catch(() => undefined);
      if (!stopping) await delay(backoffDelay(attempt++, 200, 5000), abort.signal);
    }
  }
  const loop = run();

  return {
    subscribe(orderId, onChange) {
      let set = subscribers.get(orderId);
      if (!set) subscribers.set(orderId, (set = new Set()));
      set.add(onChange);
      return () => {
        set.delete(onChange);
        if (set.size === 0) subscribers.delete(orderId);
      };
    },
    async stop() {
      stopping = true;
      abort.abort();
      everyone(true);
      await client?.end().catch(() => undefined);
      await loop;
    },
  };
}
