/**
 * One broker user per component, each with the permissions (regular expressions over resource names, per vhost) its
 * job needs and no more. Applied by setup through the management HTTP API when RABBITMQ_MANAGEMENT_URL is set,
 * otherwise with rabbitmqctl on this machine, as the queue policies are. Idempotent: a user is created when missing,
 * its password set to the configured one (a new value rotates it) and its permissions replaced.
 *
 * RabbitMQ's access control (https://www.rabbitmq.com/docs/access-control): declaring or deleting an exchange or
 * queue takes `configure` on it; publishing takes `write` on the exchange (the default exchange is `amq.default`);
 * consuming, purging and being the source of a binding take `read`; a binding takes `write` on its destination; a
 * queue with a dead-letter exchange also takes `write` on that exchange and `read` on the queue, and an exchange with
 * an alternate exchange `write` on that one and `read` on itself.
 */
import { rabbitmqctl as runRabbitmqctl } from './rabbitmqctl';
import { z } from 'zod';
import { vhostOf } from '@saga/common/messaging/broker';
import { consumerQueueNames, topologyNames } from '@saga/common/messaging/topology';
import { consumerQueueOf, DATABASE_OWNERS, MONITOR } from '@saga/common/contracts/service-names';

/** The monitor's queue of dead-letter reports (services/monitor declares it; named here for its permissions). */
export const MONITOR_REPORTS_QUEUE = 'monitor.dead-letter-reports';

export const BROKER_COMPONENTS = ['relay', ...DATABASE_OWNERS] as const;
export type BrokerComponent = (typeof BROKER_COMPONENTS)[number];

type Upper<C extends string> = Uppercase<C>;
const userName = z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'letters, digits and _ . @ -');

/** `<NAME>_RABBITMQ_USER` (default: the component's name) and `<NAME>_RABBITMQ_PASSWORD` for each component. */
export const BrokerUsersEnv = {
  ...(Object.fromEntries(
    BROKER_COMPONENTS.flatMap((c) => [
      [`${c.toUpperCase()}_RABBITMQ_USER`, userName.default(c)],
      [`${c.toUpperCase()}_RABBITMQ_PASSWORD`, z.string().min(1).optional()],
    ]),
  ) as {
    [C in BrokerComponent as `${Upper<C>}_RABBITMQ_USER`]: z.ZodDefault<typeof userName>;
  } & {
    [C in BrokerComponent as `${Upper<C>}_RABBITMQ_PASSWORD`]: z.ZodOptional<z.ZodString>;
  }),
  NODE_ENV: z.string().optional(),
};

export type Permissions = { configure: string; write: string; read: string };

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const only = (names: readonly string[]) => `^(${[...new Set(names)].map(escape).join('|')})$`;

/** What `component` may configure, write and read on the vhost of the events exchange `exchange`. Pure. */
export function permissionsFor(component: BrokerComponent, exchange: string): Permissions {
  const t = topologyNames(exchange);
  // Everyone declares the shared topology at start (assertEventTopology): the exchange with its alternate exchange,
  // the operator queues and the dead-letter report exchange.
  const shared = {
    configure: [t.exchange, t.unroutableExchange, t.invalidQueue, t.deadLetterReports],
    write: [t.unroutableExchange],
    read: [t.exchange, t.unroutableExchange],
  };
  if (component === 'relay') {
    return {
      configure: only(shared.configure),
      // Events to the exchange; rows that cannot be events to the invalid queue, through the default exchange.
      write: only([...shared.write, t.exchange, 'amq.default']),
      // The operator queues: an operator replays them with the relay's credentials (npm run dlq).
      read: only([...shared.read, t.invalidQueue]),
    };
  }
  const q = consumerQueueNames(consumerQueueOf(component));
  const reports = component === MONITOR ? [MONITOR_REPORTS_QUEUE] : [];
  return {
    configure: only([...shared.configure, q.queue, q.retry, q.dlq, ...reports]),
    // Retries and dead letters go straight to its own queues (default exchange), with a report to the observers.
    write: only([...shared.write, 'amq.default', t.deadLetterReports, q.queue, ...reports]),
    read: only([
      ...shared.read,
      q.queue,
      q.retry,
      q.dlq,
      ...(component === MONITOR ? [t.deadLetterReports, MONITOR_REPORTS_QUEUE] : []),
    ]),
  };
}

type Config = { RABBITMQ_URL: string; EVENTS_EXCHANGE: string; RABBITMQ_MANAGEMENT_URL?: string } & Record<
  string,
  unknown
>;

/** The configured users, or undefined when no component password is set (one shared user, as in local runs). */
export function componentUsers(
  c: Config,
): { component: BrokerComponent; user: string; password: string }[] | undefined {
  const each = BROKER_COMPONENTS.map((component) => ({
    component,
    user: String(c[`${component.toUpperCase()}_RABBITMQ_USER`] ?? component),
    password: c[`${component.toUpperCase()}_RABBITMQ_PASSWORD`] as string | undefined,
  }));
  const missing = each.filter((e) => !e.password).map((e) => `${e.component.toUpperCase()}_RABBITMQ_PASSWORD`);
  if (missing.length === each.length) return undefined;
  if (missing.length > 0)
    throw new Error(`per-component broker users need every password: ${missing.join(', ')} not set`);
  return each.map((e) => ({ ...e, password: e.password! }));
}

/** Create or update each component's user and its permissions on the vhost of RABBITMQ_URL. */
export async function ensureBrokerUsers(c: Config, say: (m: string) => void): Promise<void> {
  const users = componentUsers(c);
  if (!users) {
    if (c.NODE_ENV === 'production')
      console.warn(
        'setup: WARNING: no <COMPONENT>_RABBITMQ_PASSWORD is set, so every component shares the broker user of its ' +
          'RABBITMQ_URL and any of them can publish events the others apply. Set RELAY_, ORDER_, INVENTORY_, ' +
          'PAYMENT_ and MONITOR_RABBITMQ_PASSWORD (docs/security.md).',
      );
    say('rabbitmq: one shared user (no component passwords set)');
    return;
  }
  const vhost = vhostOf(c.RABBITMQ_URL);
  const api = c.RABBITMQ_MANAGEMENT_URL ? managementApi(c.RABBITMQ_MANAGEMENT_URL) : rabbitmqctl;
  for (const u of users) {
    const p = permissionsFor(u.component, c.EVENTS_EXCHANGE);
    await api.putUser(u.user, u.password);
    await api.putPermissions(vhost, u.user, p);
    say(
      `rabbitmq: user ${u.user} (${u.component}) on vhost ${vhost}: configure ${p.configure} write ${p.write} read ${p.read}`,
    );
  }
}

type UserApi = {
  putUser: (user: string, password: string) => Promise<void>;
  putPermissions: (vhost: string, user: string, p: Permissions) => Promise<void>;
};

function managementApi(managementUrl: string): UserApi {
  const base = new URL(managementUrl);
  const auth = Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString(
    'base64',
  );
  base.username = '';
  base.password = '';
  const put = async (path: string, body: unknown, what: string) => {
    const url = new URL(path, base.href.endsWith('/') ? base.href : `${base.href}/`);
    const res = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Basic ${auth}` },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`management API ${res.status} setting ${what}: ${await res.text()}`);
  };
  return {
    // PUT replaces the user: creates it, or sets a new password (tags none: no management UI access).
    putUser: (user, password) => put(`api/users/${encodeURIComponent(user)}`, { password, tags: '' }, `user ${user}`),
    putPermissions: (vhost, user, p) =>
      put(`api/permissions/${encodeURIComponent(vhost)}/${encodeURIComponent(user)}`, p, `permissions of ${user}`),
  };
}

const ctl = (args: string[], input?: string) => runRabbitmqctl(args, `rabbitmqctl ${args[0]} failed`, input);

/** Passwords go on standard input, never on a command line (visible to every local user in the process list). */
const rabbitmqctl: UserApi = {
  async putUser(user, password) {
    const existing = JSON.parse(ctl(['list_users', '--formatter', 'json'])) as { user: string }[];
    if (existing.some((e) => e.user === user)) ctl(['change_password', user], password);
    else ctl(['add_user', user], password);
  },
  async putPermissions(vhost, user, p) {
    ctl(['set_permissions', '-p', vhost, user, p.configure, p.write, p.read]);
  },
};
