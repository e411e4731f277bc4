import { z } from 'zod';
import { BaseEnv, parseEnv } from '@saga/common/runtime/config';

const SourceList = z
  .string()
  .min(1)
  .transform((s, ctx) => {
    const out: { name: string; url: string }[] = [];
    for (const part of s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const i = part.indexOf('=');
      const name = part.slice(0, i);
      const url = part.slice(i + 1);
      if (i < 1 || !/^[a-z][a-z0-9_]*$/.test(name) || !/^postgres(ql)?:\/\//.test(url)) {
        ctx.addIssue({
          code: 'custom',
          message: 'expected name=postgres://... pairs separated by commas, names lower-case',
        });
        return z.NEVER;
      }
      out.push({ name, url });
    }
    if (new Set(out.map((o) => o.name)).size !== out.length) {
      ctx.addIssue({ code: 'custom', message: 'source names must be unique' });
      return z.NEVER;
    }
    return out;
  });

export const RelayEnv = BaseEnv.extend({
  /** `name=url` pairs, one per database whose outbox is relayed. The role needs REPLICATION and SELECT on outbox. */
  RELAY_SOURCES: SourceList.prefault(
    'order=postgres://relay@127.0.0.1:5432/orders,inventory=postgres://relay@127.0.0.1:5432/inventory,payment=postgres://relay@127.0.0.1:5432/payment',
  ),
  /** Slot of source `x` is `<prefix>_x`; slots are per server, so names must differ between sources of one server. */
  RELAY_SLOT_PREFIX: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('saga_outbox'),
  RELAY_PUBLICATION: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('outbox_pub'),
  RELAY_OUTBOX_TABLE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('outbox'),
  RELAY_PORT: z.coerce.number().int().min(0).max(65535).default(8010),
  /**
   * Messages published and not yet confirmed, per source; reading the WAL pauses beyond it. Messages held behind an
   * earlier one of their aggregate (RELAY_ORDER_PER_AGGREGATE) take no room in it and are bounded by as many apart.
   */
  RELAY_MAX_IN_FLIGHT: z.coerce.number().int().min(1).default(10_000),
  /** How soon after a WAL message or a confirm the confirmed position is reported to PostgreSQL (nothing while idle). */
  RELAY_ACK_INTERVAL_MS: z.coerce.number().int().min(1).default(20),
  RELAY_RETRY_BASE_MS: z.coerce.number().int().min(1).default(250),
  RELAY_RETRY_MAX_MS: z.coerce.number().int().min(1).default(10_000),
  /** How often a standby retries a slot that another relay streams. */
  RELAY_STANDBY_POLL_MS: z.coerce.number().int().min(50).default(1000),
  /**
   * Create a missing slot (true/false). Off by default when NODE_ENV=production (the image): slots are created by
   * `npm run migrate`, and a slot that disappeared must not be recreated at the current position, which would skip
   * every row written in between. On by default elsewhere (local development, tests).
   */
  RELAY_CREATE_SLOT: z.enum(['true', 'false']).optional(),
  NODE_ENV: z.string().optional(),
  /** The broker's `max_message_size`: a larger row goes to the invalid queue instead of closing the channel. */
  RELAY_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(128 * 1024 * 1024),
  /**
   * A replication connection silent this long (no data, no keepalive, although the relay asks for one) is taken for
   * dead and replaced. Default: the server's wal_sender_timeout (60 s if it is 0). When set, the replication
   * connection asks the server for the same wal_sender_timeout (a per-connection setting), so the walsender of a dead
   * link frees the slot as soon as the relay gives up on it. Also bounds connecting, slot queries and /metrics' reads.
   */
  RELAY_REPLICATION_TIMEOUT_MS: z.coerce.number().int().min(100).optional(),
  /**
   * How often the slot marker in the source database is brought up to the last acknowledged commit (at most one
   * UPDATE per interval, only when it moved): after a lost slot, recovery reconciles from it.
   */
  RELAY_MARKER_INTERVAL_MS: z.coerce.number().int().min(100).default(5_000),
  /**
   * The services' outbox retention (their OUTBOX_RETENTION_HOURS; keep the two equal): `recover` refuses a window that
   * starts before it, because rows older than that may be pruned already.
   */
  OUTBOX_RETENTION_HOURS: z.coerce.number().int().min(1).default(24),
  /**
   * Never publish a message of an aggregate while an earlier one of it is unconfirmed (true, the default), so a
   * consumer queue that refuses one event never gets the next event of that aggregate first. The price: one message
   * per aggregate in flight, so a backlog of few aggregates goes at one per confirm round trip (a classic queue
   * confirms after its fsync). false pipelines everything; then consumers must tolerate that order after a refusal.
   */
  RELAY_ORDER_PER_AGGREGATE: z.enum(['true', 'false']).default('true'),
  /** TCP keepalive idle time of the replication connection. */
  RELAY_TCP_KEEPALIVE_MS: z.coerce.number().int().min(100).default(10_000),
});
export type RelayConfig = Omit<z.infer<typeof RelayEnv>, 'RELAY_CREATE_SLOT'> & { RELAY_CREATE_SLOT: boolean };
export const loadConfig = (env: Record<string, string | undefined> = process.env): Readonly<RelayConfig> => {
  const parsed = parseEnv(RelayEnv, env);
  const createSlot =
    parsed.RELAY_CREATE_SLOT === undefined ? parsed.NODE_ENV !== 'production' : parsed.RELAY_CREATE_SLOT === 'true';
  return Object.freeze({ ...parsed, RELAY_CREATE_SLOT: createSlot });
};
