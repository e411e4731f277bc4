/**
 * The services of the saga: the one list that setup, migrations, `npm start`, the image's entry point, the `dlq`
 * tool, the relay's queue-depth gauge and the tests read. Adding a service starts here (README: "Add a service").
 */
export const SERVICES = ['order', 'inventory', 'payment'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const isServiceName = (s: unknown): s is ServiceName => typeof s === 'string' && (SERVICES as readonly string[]).includes(s);

/** A service's queue of the events it consumes, which is also its consumer name in its inbox. */
export const consumerQueueOf = (s: ServiceName) => `${s}.events` as const;
