/**
 * Where the broker is: `RABBITMQ_URL` names one node (`amqp://user:pass@host:5672/vhost`) or several nodes of one
 * cluster, separated by commas (`amqp://u:p@rmq-0:5672/v,amqp://u:p@rmq-1:5672/v,amqp://u:p@rmq-2:5672/v`). Every
 * connection to RabbitMQ (service consumers, the relay's publishers and queue gauge, setup and the dlq tool) is
 * opened here, so failover between nodes is decided in one place.
 *
 * amqplib takes a single URL and its own recovery wrapper reconnects to that same URL only. amqp-connection-manager
 * rotates over several URLs, but with its own reconnect loop and channel wrappers that replay setup and hold
 * publishes while disconnected; our components already rebuild each session from a clean state in their own loop
 * (the relay from the slot's acknowledged position, a consumer after returning its unsettled batch), so what was
 * missing is only the choice of the node.
 */
import amqp, { type ChannelModel } from 'amqplib';
import { z } from 'zod';
import { settleWithin, StoppingError, untilAborted } from '../runtime/settle';
import { amqpSocket } from '../runtime/library-internals';

/**
 * A node that does not answer within this time is skipped for the next one. Only with several addresses: a single
 * address keeps amqplib's behaviour (the operating system's connect timeout).
 */
export const CONNECT_TIMEOUT_MS = 5_000;
/** Connect (TCP and AMQP handshake) bound when there is only one address. */
export const SINGLE_CONNECT_TIMEOUT_MS = 15_000;

/** The node URLs of a `RABBITMQ_URL` value, in the order given. */
export function brokerAddresses(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `RABBITMQ_URL`: one amqp(s) URL, or several (the nodes of one cluster) separated by commas. */
export const BrokerUrl = z
  .string()
  .min(1)
  .refine((value) => {
    const list = brokerAddresses(value);
    return (
      list.length > 0 &&
      list.every((a) => {
        try {
          return /^amqps?:$/.test(new URL(a).protocol);
        } catch {
          return false;
        }
      })
    );
  }, 'expected amqp://user:password@host:port/vhost, or several such URLs (the nodes of one cluster) separated by commas');

/** The address to show in logs and errors: the password hidden. */
export function redactAddress(address: string): string {
  try {
    const u = new URL(address);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}

export type BrokerConnection = ChannelModel & {
  /** The node address this connection went to (password hidden), for logs. */
  brokerAddress: string;
};

export type BrokerConnector = {
  /**
   * Connect to one node. The first connection goes to the first address; each later one starts with the address
   * after the node of the previous connection (the node a session just lost is tried last) and goes round the
   * list until a node accepts. Rejects when none does; the caller's reconnect loop backs off and calls again.
   * `signal`: a stop. It rejects the connect at once, even mid-handshake (a connect is bounded by 15 s with one
   * address, as long as a component's whole shutdown); a connection that opens after it is closed.
   */
  connect: (socketOptions?: Record<string, unknown>, signal?: AbortSignal) => Promise<BrokerConnection>;
  addresses: readonly string[];
};

/**
 * One connector per long-lived connection (a consumer, a relay source's publisher): each keeps its own place in the
 * list. `open` is amqplib's connect (a parameter for the unit tests only).
 */
export function brokerConnector(
  url: string,
  open: (address: string, options: Record<string, unknown>) => Promise<ChannelModel> = (a, o) => amqp.connect(a, o),
): BrokerConnector {
  const addresses = brokerAddresses(url);
  if (addresses.length === 0) throw new Error('RABBITMQ_URL names no broker');
  let start = 0;
  const connectAny = async (options: Record<string, unknown>, signal?: AbortSignal): Promise<BrokerConnection> => {
    // amqplib's socket options (clientProperties, timeout, …), the same for every node.
    // Always bounded: a node that accepts TCP but never answers the AMQP handshake (a frozen VM, a proxy) would
    // otherwise hang the session in connect forever; with another node to try, the bound is shorter.
    const socketOptions = {
      timeout: addresses.length > 1 ? CONNECT_TIMEOUT_MS : SINGLE_CONNECT_TIMEOUT_MS,
      ...options,
    };
    const failures: string[] = [];
    let last: unknown;
    for (let i = 0; i < addresses.length; i++) {
      // A stop ends the round: no connection to the next node nobody would use.
      if (signal?.aborted) throw new StoppingError('broker connect');
      const index = (start + i) % addresses.length;
      const address = addresses[index]!;
      try {
        const conn = (await open(address, socketOptions)) as BrokerConnection;
        start = (index + 1) % addresses.length;
        conn.brokerAddress = redactAddress(address);
        return conn;
      } catch (err) {
        last = err;
        failures.push(`${redactAddress(address)}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    // One address: its own error, as amqplib reported it. Several: each node's reason.
    if (addresses.length === 1) throw last;
    throw new Error(`no broker node accepted a connection (${failures.join('; ')})`, { cause: last });
  };
  return {
    addresses,
    connect(options = {}, signal) {
      if (!signal) return connectAny(options);
      // amqplib's connect cannot be cancelled: what it opens after the stop is closed, not left consuming. Its
      // errors from then on (a reset during that close) need a listener, or amqplib rethrows them.
      return untilAborted(connectAny(options, signal), signal, 'broker connect', (late) => {
        late.on('error', () => undefined);
        void closeConnection(late);
      });
    },
  };
}

/** One connection for a short-lived tool (setup, dlq, doctor): the first node that accepts. */
export const connectBroker = (url: string, options?: Record<string, unknown>): Promise<BrokerConnection> =>
  brokerConnector(url).connect(options);

/** The vhost the URL(s) name ('/' when there is none); every address of a cluster names the same one. */
export function vhostOf(url: string): string {
  const path = new URL(brokerAddresses(url)[0] ?? url).pathname;
  return path.length > 1 ? decodeURIComponent(path.slice(1)) : '/';
}

/**
 * Close a connection, waiting at most `ms` for the broker: amqplib's `close()` settles only when the broker's
 * close-ok arrives, which a dead link (a half-open socket, a node gone mid-close) never sends, and a session that
 * awaits it would never reconnect. After the wait the socket is destroyed whatever happened. Reaches amqplib's
 * socket (`connection.stream`, not part of its typed API) in this one place.
 */
export async function closeConnection(conn: ChannelModel | undefined, ms = 1_000): Promise<void> {
  if (!conn) return;
  const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  await settleWithin(Promise.race([conn.close(), closed]), ms, 'broker connection close').catch(() => undefined);
  amqpSocket(conn)?.destroy();
}
