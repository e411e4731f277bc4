/**
 * The services of the saga: the one list that setup, migrations, `npm start`, the image's entry point, the `dlq`
 * tool, the relay's sources and queue-depth gauge and the tests read. Each publishes events through its outbox.
 * Adding a service starts here (README: "Add a service").
 */
export const SERVICES = ['order', 'inventory', 'payment'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * The saga monitor: an observer with a database of its own that consumes every event and publishes none (no outbox,
 * no relay stream). No service depends on it.
 */
export const MONITOR = 'monitor' as const;

/** Every component that owns a database, a role and a consumer queue: what setup, migrate and the dlq tool manage. */
export const DATABASE_OWNERS = [...SERVICES, MONITOR] as const;
export type DatabaseOwner = (typeof DATABASE_OWNERS)[number];

export const isServiceName = (s: unknown): s is ServiceName =>
  typeof s === 'string' && (SERVICES as readonly string[]).includes(s);
export const isDatabaseOwner = (s: unknown): s is DatabaseOwner =>
  typeof s === 'string' && (DATABASE_OWNERS as readonly string[]).includes(s);

/** A component's queue of the events it consumes, which is also its consumer name in its inbox. */
export const consumerQueueOf = (s: DatabaseOwner) => `${s}.events` as const;
