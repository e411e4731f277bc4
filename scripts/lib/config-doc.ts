/**
 * docs/configuration.md, generated from the zod schemas each component parses its environment with: the variable
 * names, who reads them and their defaults come from the schemas; what each means comes from ROWS below. A variable
 * that a schema reads and ROWS does not describe fails generation, so the page cannot fall behind the code
 * (`npm run contracts` writes it; a unit test fails when the committed page differs).
 */
import type { z } from 'zod';
import { RelayEnv } from '../../cdc-relay/src/config';
import { InventoryEnv } from '../../services/inventory/src/config';
import { MonitorEnv } from '../../services/monitor/src/config';
import { OrderEnv } from '../../services/order/src/config';
import { PaymentEnv } from '../../services/payment/src/config';
import { SeedEnv } from '../demo-data';
import { AdminEnv } from './admin';

export const CONFIGURATION_FILE = 'docs/configuration.md';

/** Each component's environment schema, under the name the page uses for it. */
const COMPONENTS: Record<string, z.ZodObject> = {
  order: OrderEnv,
  inventory: InventoryEnv,
  payment: PaymentEnv,
  monitor: MonitorEnv,
  relay: RelayEnv,
  'setup/migrate': AdminEnv,
  'seed/demo': SeedEnv,
};

/** A row of the page: variables that share one meaning. `outside` marks variables no schema reads (libraries'). */
type Row = { vars: string[]; meaning: string; default?: string; outside?: { usedBy: string; default: string } };

const ROWS: Row[] = [
  {
    vars: ['RABBITMQ_URL'],
    meaning:
      "broker (include the vhost as the path); for a cluster, every node's URL separated by commas: each connection tries them in turn (5 s connect timeout each) and, after losing one, starts with the next node",
  },
  { vars: ['EVENTS_EXCHANGE'], meaning: 'durable topic exchange for all events' },
  { vars: ['LOG_LEVEL'], meaning: '`trace`…`fatal`, `silent`' },
  {
    vars: ['LOG_FLUSH_MS'],
    meaning:
      'log lines are collected up to 4 KiB or this long and written together; `0` writes each line at once. Any exit flushes them; a SIGKILL loses at most this much',
  },
  { vars: ['SHUTDOWN_TIMEOUT_MS'], meaning: 'longest clean shutdown before exit 1' },
  { vars: ['NODE_ENV'], meaning: '`production` (the image) turns off what only suits a development machine' },
  { vars: ['PORT'], meaning: 'HTTP port' },
  {
    vars: ['DATABASE_URL'],
    meaning:
      "the service's own database, with its own role; a Unix socket as `postgresql:///<db>?host=/var/run/postgresql&user=<role>` when the database runs on the same host",
  },
  { vars: ['DB_POOL_MAX'], meaning: 'database connections per process' },
  {
    vars: ['DB_PLAN_CACHE_MODE'],
    meaning:
      "PostgreSQL's `plan_cache_mode` for the service's connections: `auto` (PostgreSQL's default) or `force_custom_plan`, for where autovacuum is off or lags (docs/decisions). Added to `PGOPTIONS`; an `options` parameter in `DATABASE_URL` replaces both",
  },
  { vars: ['CONSUMER_PREFETCH'], meaning: 'unacknowledged messages in flight per consumer (docs/decisions)' },
  {
    vars: ['CONSUMER_MAX_BATCH'],
    meaning: 'most messages applied in one transaction (what arrived while the previous batch committed)',
  },
  {
    vars: ['CONSUMER_BATCH_INTERVAL_MS'],
    meaning:
      'shortest time between the starts of two batches that are not full: a message after a quiet spell is applied at once, messages that keep coming are gathered into one transaction per interval; `0` starts every batch at once (docs/decisions)',
  },
  { vars: ['CONSUMER_MAX_ATTEMPTS'], meaning: 'tries of a transiently failing message before its dead-letter queue' },
  { vars: ['CONSUMER_RETRY_BASE_MS'], meaning: 'first retry delay, doubling per attempt (cap 30 s)' },
  {
    vars: ['EVENT_PUBLISHERS'],
    meaning:
      "broker users whose events are applied, comma-separated (the relay's; Debezium's during a swap); any other `user-id` is dead-lettered as `untrusted-publisher` (docs/security.md)",
    default: 'the user of `RABBITMQ_URL`',
  },
  {
    vars: ['EVENT_UNSIGNED_VIA_EXCHANGE'],
    meaning:
      'apply an event without `user-id` when it came through the events exchange (Debezium Server sets none); otherwise it is dead-lettered',
    default: '`true` without `EVENT_PUBLISHERS`, else `false`',
  },
  {
    vars: ['INBOX_RETENTION_HOURS'],
    meaning: 'how long the inbox remembers an applied message id (redeliveries come within minutes)',
  },
  {
    vars: ['INBOX_PRUNE_EVERY_MS'],
    meaning: 'while messages flow, older inbox rows are deleted at most this often; an idle service queries nothing',
  },
  {
    vars: ['OUTBOX_RETENTION_HOURS'],
    meaning:
      'how long outbox rows are kept: the window `npm run relay -- reconcile` can republish after a failover or a lost slot. Longer than the time to notice and act; shorter than `INBOX_RETENTION_HOURS`. The relay reads it too (keep them equal): `recover` refuses a window the services no longer keep',
  },
  { vars: ['OUTBOX_PRUNE_EVERY_MS'], meaning: 'how often older outbox rows are deleted, in batches' },
  { vars: ['HTTP_BODY_LIMIT'], meaning: 'larger request bodies get 413' },
  { vars: ['SSE_HEARTBEAT_MS'], meaning: 'keep-alive comments on open event streams' },
  { vars: ['PAYMENT_LIMIT_CENTS'], meaning: 'largest single payment authorized' },
  { vars: ['SAGA_STUCK_AFTER_MS'], meaning: 'a saga not settled with no event for this long is stuck' },
  {
    vars: ['MONITOR_RETENTION_HOURS', 'MONITOR_PRUNE_EVERY_MS'],
    meaning: 'settled sagas, their events and dead-letter reports older than this are pruned, this often',
  },
  {
    vars: ['RELAY_SOURCES'],
    default: '`order=postgres://relay@127.0.0.1:5432/orders,inventory=…,payment=…`',
    meaning: '`name=url` per source database, separated by commas',
  },
  { vars: ['RELAY_SLOT_PREFIX'], meaning: 'the slot of source `x` is `<prefix>_x`; migrate and the relay must agree' },
  { vars: ['RELAY_PUBLICATION'], meaning: 'the publication to stream' },
  { vars: ['RELAY_OUTBOX_TABLE'], meaning: 'the table whose INSERTs are events' },
  {
    vars: ['RELAY_PORT'],
    meaning:
      'health and metrics port: the relay has no API, so this is its admin listener, for operators and Prometheus only',
  },
  {
    vars: ['RELAY_MAX_IN_FLIGHT'],
    meaning:
      'messages in flight (published, unconfirmed) per source before reading pauses; messages held for per-aggregate order are bounded by as many apart; it also bounds what a crash sends twice (docs/decisions)',
  },
  {
    vars: ['RELAY_ACK_INTERVAL_MS'],
    meaning:
      'how soon after a WAL message or a confirm the confirmed position is reported to PostgreSQL (no flush while idle)',
  },
  { vars: ['RELAY_RETRY_BASE_MS', 'RELAY_RETRY_MAX_MS'], meaning: 'reconnect backoff (capped exponential, jittered)' },
  {
    vars: ['RELAY_MARKER_INTERVAL_MS'],
    meaning:
      'how often the slot marker in the source database records the acknowledged position and commit time (only when it moved): the point a recovery reconciles from (docs/relay.md)',
  },
  { vars: ['RELAY_STANDBY_POLL_MS'], meaning: 'how often a standby retries a slot held by another relay' },
  {
    vars: ['RELAY_CREATE_SLOT'],
    default: '`false` with `NODE_ENV=production` (the image), else `true`',
    meaning:
      'create a missing slot on a first install; off in production, where `npm run migrate` creates the slots. A slot that was streamed before is never recreated: it is reported (`relay_slot_missing`, not ready) (docs/failover.md)',
  },
  {
    vars: ['RELAY_MAX_MESSAGE_BYTES'],
    meaning: "the broker's `max_message_size`; a larger row goes to the invalid queue",
  },
  {
    vars: ['RELAY_REPLICATION_TIMEOUT_MS'],
    default: "the server's `wal_sender_timeout`",
    meaning:
      "a replication link silent this long is dropped and reopened; when set, the relay asks the server for the same `wal_sender_timeout`, so both ends give up on a half-open link together (unset: the server's `wal_sender_timeout`)",
  },
  { vars: ['RELAY_TCP_KEEPALIVE_MS'], meaning: 'TCP keepalive idle time of the replication connection' },
  { vars: ['PG_ADMIN_URL'], meaning: 'superuser, for setup and migrations only' },
  {
    vars: ['ORDER_PG_ADMIN_URL', 'INVENTORY_PG_ADMIN_URL', 'PAYMENT_PG_ADMIN_URL', 'MONITOR_PG_ADMIN_URL'],
    meaning:
      'superuser URL of the server holding that database, when each has its own (compose, k8s); unset: `PG_ADMIN_URL`',
  },
  { vars: ['ORDER_DB_NAME', 'INVENTORY_DB_NAME', 'PAYMENT_DB_NAME', 'MONITOR_DB_NAME'], meaning: 'database names' },
  {
    vars: ['ORDER_DB_USER', 'INVENTORY_DB_USER', 'PAYMENT_DB_USER', 'MONITOR_DB_USER', 'RELAY_DB_USER'],
    meaning: 'login roles',
  },
  {
    vars: [
      'ORDER_DB_PASSWORD',
      'INVENTORY_DB_PASSWORD',
      'PAYMENT_DB_PASSWORD',
      'MONITOR_DB_PASSWORD',
      'RELAY_DB_PASSWORD',
    ],
    meaning: 'passwords to set on the roles (unset: none, for trust or peer authentication)',
  },
  {
    vars: [
      'RELAY_RABBITMQ_USER',
      'ORDER_RABBITMQ_USER',
      'INVENTORY_RABBITMQ_USER',
      'PAYMENT_RABBITMQ_USER',
      'MONITOR_RABBITMQ_USER',
    ],
    meaning: "each component's broker user, created by setup when the passwords are set",
  },
  {
    vars: [
      'RELAY_RABBITMQ_PASSWORD',
      'ORDER_RABBITMQ_PASSWORD',
      'INVENTORY_RABBITMQ_PASSWORD',
      'PAYMENT_RABBITMQ_PASSWORD',
      'MONITOR_RABBITMQ_PASSWORD',
    ],
    meaning:
      "passwords of the component users, all or none: set, setup creates each user with only its permissions on `RABBITMQ_URL`'s vhost (a new value rotates it); unset, every component shares one user (docs/security.md)",
  },
  {
    vars: ['PG_RESTART_COMMAND'],
    meaning:
      'how to restart PostgreSQL when `wal_level` must change (unset: `pg_ctlcluster` on a local Debian cluster)',
  },
  {
    vars: ['MIGRATIONS_DIR'],
    default: '`migrations` under the working directory',
    meaning: 'the committed drizzle migrations',
  },
  {
    vars: ['RABBITMQ_MANAGEMENT_URL'],
    meaning:
      '`http://user:password@host:15672`: apply the queue policies through the management API instead of `rabbitmqctl`',
  },
  { vars: ['ORDER_URL', 'INVENTORY_URL', 'PAYMENT_URL'], meaning: 'where each service answers' },
  {
    vars: ['ORDER_DATABASE_URL', 'INVENTORY_DATABASE_URL', 'PAYMENT_DATABASE_URL', 'MONITOR_DATABASE_URL'],
    meaning: "a service's `DATABASE_URL` under `npm start`",
    outside: { usedBy: 'start', default: 'unset' },
  },
  {
    vars: ['MONITOR_PORT'],
    meaning: "the monitor's public port (probes only) under `npm start`",
    outside: { usedBy: 'start', default: '`8003`' },
  },
  {
    vars: ['MONITOR_ADMIN_PORT'],
    meaning: "the monitor's admin listener under `npm start`: its page, its API and `/metrics`",
    outside: { usedBy: 'start', default: '`8103`' },
  },
  {
    vars: ['HTTP_REQUEST_TIMEOUT_MS'],
    meaning: 'a request must arrive whole within this (server.requestTimeout); streams already answering are not cut',
  },
  {
    vars: ['HTTP_HEADERS_TIMEOUT_MS'],
    meaning: 'its headers within this (server.headersTimeout): a client cannot hold a socket by trickling them',
  },
  { vars: ['HTTP_MAX_CONNECTIONS'], meaning: 'open connections beyond this are refused (server.maxConnections)' },
  {
    vars: ['ADMIN_PORT'],
    meaning:
      "the admin listener: `/metrics` (served nowhere else), probes and the administration routes (catalogue, accounts, unfiltered lists; the monitor's page and API); never exposed to customers (docs/security.md)",
  },
  {
    vars: ['AUTH_ISSUER', 'AUTH_AUDIENCE', 'AUTH_JWKS_URL'],
    meaning:
      "the identity provider whose bearer tokens the order API accepts: issuer, audience and where its signing keys are. Required with `NODE_ENV=production`; unset elsewhere, the development issuer's tokens are accepted (docs/security.md)",
  },
  {
    vars: ['AUTH_DEV_SECRET'],
    meaning:
      "the development issuer's signing key, outside production only (`npm run demo` and the tests mint tokens with it); unset: a well-known development key",
  },
  {
    vars: ['SSE_MAX_PER_CALLER', 'SSE_MAX_STREAMS'],
    meaning: 'open order event streams per caller (beyond: 429) and in all on one replica (beyond: 503)',
  },
  {
    vars: ['ORDER_RATE_PER_SECOND', 'ORDER_RATE_BURST'],
    meaning:
      '`POST /orders` per caller: a token bucket of this burst refilled at this rate (beyond: 429 with Retry-After)',
  },
  {
    vars: ['ORDER_QUEUE_MAX'],
    meaning: 'orders waiting to be written beyond this are refused with 503 and Retry-After (load shedding)',
  },
  {
    vars: ['ORDER_WRITE_INTERVAL_MS'],
    meaning:
      'while the orders in progress are at least a quarter of `ORDER_PENDING_MAX` (sagas queue up), a write of orders that is not full starts at most once per this many ms, so more orders share a commit; below that, or at `0`, a write starts as soon as one of its two connections is free (docs/decisions/0020-paced-order-writes.md)',
  },
  {
    vars: ['ORDER_PENDING_MAX'],
    meaning:
      'orders in progress (placed, not yet confirmed or cancelled) at which new ones are refused with 503 and Retry-After: bounds the saga backlog, and so how long an accepted order takes (docs/operations.md)',
  },
  {
    vars: ['RELAY_ORDER_PER_AGGREGATE'],
    meaning:
      'never publish a message of an aggregate while an earlier one of it is unconfirmed, so a refused and re-sent event cannot be overtaken by a later one (docs/relay.md)',
  },
  {
    vars: ['INVENTORY_ADMIN_URL', 'PAYMENT_ADMIN_URL'],
    meaning: "inventory's and payment's admin listeners, where the seed sets the catalogue and the accounts",
  },
  {
    vars: ['DB_CONSUMER_POOL_MAX'],
    meaning: "the consumer's own database connections, apart from HTTP's, so requests cannot starve the saga",
  },
  {
    vars: ['DB_QUERY_TIMEOUT_MS'],
    meaning:
      'longest wait for a database answer on the client side: a half-open link fails the batch (held, not dead-lettered) instead of stalling it',
  },
  { vars: ['DB_KEEPALIVE_MS'], meaning: "TCP keepalive idle time of the services' database connections" },
  {
    vars: ['DB_STATEMENT_TIMEOUT', 'DB_IDLE_IN_TRANSACTION_TIMEOUT'],
    meaning:
      'set by setup on every service role (`ALTER ROLE ... SET`): the server ends a statement that runs longer, and a transaction whose client went silent; PostgreSQL durations, `0` turns one off',
  },
  {
    vars: ['MONITOR_QUEUE_MAX_LENGTH'],
    meaning:
      "length bound of the saga monitor's queue (a policy, dropping the oldest): what the monitor's absence may cost the broker (docs/operations.md)",
  },
  { vars: ['SEED_TIMEOUT_MS'], meaning: 'how long the seed waits for every service to be ready' },
  {
    vars: ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
    meaning: 'where to export traces (e.g. `http://otel-collector:4318`); setting it turns tracing on',
    outside: { usedBy: 'services, relay', default: 'unset' },
  },
  {
    vars: ['OTEL_TRACES_EXPORTER'],
    meaning: '`otlp`, `console`, `zipkin`; `none` keeps tracing off; any other value turns it on',
    outside: { usedBy: 'services, relay', default: 'unset (`otlp` once an endpoint is set)' },
  },
  {
    vars: ['OTEL_EXPORTER_OTLP_PROTOCOL'],
    meaning: 'or `http/json`, `grpc`',
    outside: { usedBy: 'services, relay', default: '`http/protobuf`' },
  },
  {
    vars: ['OTEL_SERVICE_NAME'],
    meaning: "the traces' `service.name`",
    outside: { usedBy: 'services, relay', default: 'the component (`order`, …, `cdc-relay`)' },
  },
  {
    vars: ['OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG'],
    meaning: 'e.g. `parentbased_traceidratio` and `0.1` to record a tenth of the orders',
    outside: { usedBy: 'services, relay', default: '`parentbased_always_on`' },
  },
  {
    vars: ['OTEL_SDK_DISABLED'],
    meaning: '`true` keeps tracing off whatever else is set (trace ids are still carried)',
    outside: { usedBy: 'services, relay', default: '`false`' },
  },
];

function defaultOf(type: z.ZodType): string {
  const def = (type as { def?: { type?: string; defaultValue?: unknown; innerType?: z.ZodType } }).def;
  if (def?.type === 'default') {
    const value = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
    return value === undefined ? 'unset' : `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
  }
  return 'unset';
}

/** For each variable: the components that read it, and each one's default. */
function readers(): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const [component, schema] of Object.entries(COMPONENTS)) {
    for (const [name, type] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
      if (!out.has(name)) out.set(name, new Map());
      out.get(name)!.set(component, defaultOf(type));
    }
  }
  return out;
}

const SERVICES = ['order', 'inventory', 'payment', 'monitor'];

/** "order, inventory, payment, monitor" reads better as "services". */
function usedBy(components: string[]): string {
  const services = SERVICES.every((s) => components.includes(s));
  const rest = components.filter((c) => !services || !SERVICES.includes(c));
  return [...(services ? ['services'] : []), ...rest].join(', ');
}

function defaults(perComponent: Map<string, string>): string {
  const values = [...new Set(perComponent.values())];
  if (values.length === 1) return values[0]!;
  return [...perComponent].map(([c, v]) => `${c} ${v}`).join(', ');
}

/** The page. Throws naming every variable a schema reads that no row describes, and every row naming none. */
export function configurationPage(): string {
  const read = readers();
  const described = new Set(ROWS.flatMap((r) => r.vars));
  const missing = [...read.keys()].filter((v) => !described.has(v));
  const unknown = ROWS.filter((r) => !r.outside)
    .flatMap((r) => r.vars)
    .filter((v) => !read.has(v));
  if (missing.length || unknown.length) {
    throw new Error(
      `${CONFIGURATION_FILE}: ${missing.length ? `describe ${missing.join(', ')} in scripts/lib/config-doc.ts` : ''}${missing.length && unknown.length ? '; ' : ''}${unknown.length ? `no schema reads ${unknown.join(', ')}` : ''}`,
    );
  }
  const lines = [
    '# Configuration',
    '',
    "<!-- Generated by npm run contracts from the components' environment schemas and scripts/lib/config-doc.ts; do not edit. -->",
    '',
    'Every variable has a default matching `npm run setup` on a local machine. Secrets come only from the environment;',
    'any variable can also be given as `<NAME>_FILE` (a path, e.g. a mounted Kubernetes secret). Every component',
    'validates its environment at start-up and names each bad variable; `saga check-config <component>` does only that.',
    '',
    '| variable | used by | default | meaning |',
    '|---|---|---|---|',
  ];
  for (const row of ROWS) {
    const names = row.vars.map((v) => `\`${v}\``).join(', ');
    if (row.outside) {
      lines.push(`| ${names} | ${row.outside.usedBy} | ${row.outside.default} | ${row.meaning} |`);
      continue;
    }
    const components = [...new Set(row.vars.flatMap((v) => [...read.get(v)!.keys()]))];
    const defaultText = row.default ?? row.vars.map((v) => defaults(read.get(v)!)).join('; ');
    lines.push(`| ${names} | ${usedBy(components)} | ${defaultText} | ${row.meaning} |`);
  }
  return `${lines.join('\n')}\n`;
}
