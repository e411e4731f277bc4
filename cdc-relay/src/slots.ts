/**
 * Slot management, the one place for the relay slot's SQL: migrate (`npm run migrate`, the migrate Job) and the relay
 * both read, check and create slots here. A slot is created only where the source database has no marker for it (a
 * first install, see slot-marker.ts); a slot that existed and is gone is reported with the time to reconcile from,
 * and only the operator's recover command creates it again.
 */
import pg from 'pg';
import { z } from 'zod';
import { isPgError } from '@saga/common/db/pg';
import { parseLsn } from './lsn';
import { bounded, ensureMarker, readMarker } from './slot-marker';

export const SlotEnv = z.object({
  /** Must match the relay's RELAY_SLOT_PREFIX: the slot of source `x` is `<prefix>_x`. */
  RELAY_SLOT_PREFIX: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('saga_outbox'),
});

/** SQLSTATE 42710 duplicate_object: created meanwhile by someone else. */
const DUPLICATE_OBJECT = '42710';
/** SQLSTATE 42P01 undefined_table, 3F000 invalid_schema_name: migrate has not made the marker table. */
const UNDEFINED_TABLE = '42P01';
const INVALID_SCHEMA = '3F000';

/** server_version_num from which a logical slot can be a failover slot (synced to standbys). */
export const FAILOVER_SLOTS_SINCE = 170000;

/**
 * The statement that creates a relay slot on a server of `serverVersionNum`. From PostgreSQL 17 the slot is a
 * failover slot (`failover = true`): standbys running with sync_replication_slots copy it, so a promoted standby
 * has it and the relay resumes there instead of waiting for an operator. It costs nothing where no standby syncs.
 */
export function createSlotStatement(serverVersionNum: number): string {
  return serverVersionNum >= FAILOVER_SLOTS_SINCE
    ? "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
    : "SELECT pg_create_logical_replication_slot($1, 'pgoutput')";
}

/**
 * The warning for a server whose failover slots are not held back for a standby: from PostgreSQL 17 a physical
 * standby can sync the relay's slot, but unless `synchronized_standby_slots` names the standby's physical slot, the
 * primary sends the relay changes the standby may not have yet. After a failover those transactions are gone from
 * the new primary while their events were published. Empty setting on 17+: a warning; before 17: nothing to say.
 */
export function standbySlotsWarning(
  serverVersionNum: number,
  synchronizedStandbySlots: string | null | undefined,
): string | undefined {
  if (serverVersionNum < FAILOVER_SLOTS_SINCE) return undefined;
  if ((synchronizedStandbySlots ?? '').trim() !== '') return undefined;
  return 'synchronized_standby_slots is empty: with a standby that syncs the relay slot, set it to the standby physical slot so the relay never receives a change the standby lacks (docs/failover.md); without a standby, ignore this';
}

/**
 * The slot is gone, and either its marker says it existed (`reconcileFrom` set: events after that time may not have
 * been published) or this caller may not create it (RELAY_CREATE_SLOT off).
 */
export class SlotMissingError extends Error {
  override name = 'SlotMissingError';
  constructor(
    message: string,
    readonly reconcileFrom: Date | undefined,
  ) {
    super(message);
  }
}
/** The server invalidated the slot (max_slot_wal_keep_size): WAL it still needed is gone. */
export class SlotLostError extends Error {
  override name = 'SlotLostError';
  constructor(
    message: string,
    readonly reconcileFrom: Date | undefined,
  ) {
    super(message);
  }
}

/** A slot of that name exists but is not this database's pgoutput slot (a RELAY_SLOT_PREFIX shared by two). */
export class SlotConflictError extends Error {
  override name = 'SlotConflictError';
}

export type SlotRow = {
  lsn: string | null;
  database: string;
  here: string;
  plugin: string;
  wal_status: string | null;
  failover: boolean | null;
};
export type SlotState = { row: SlotRow | undefined; version: number; walSenderTimeoutMs: number };

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The slot's row (if any), the server version and wal_sender_timeout (ms); `timeoutMs` bounds each query. */
export async function readSlot(c: Queryable, slot: string, timeoutMs?: number): Promise<SlotState> {
  const version = Number(
    (await c.query<{ v: string }>(bounded("SELECT current_setting('server_version_num') AS v", [], timeoutMs))).rows[0]!
      .v,
  );
  const failover = version >= FAILOVER_SLOTS_SINCE ? 's.failover' : 'NULL::boolean';
  const { rows } = await c.query<SlotRow & { timeout: string }>(
    bounded(
      `SELECT s.confirmed_flush_lsn::text AS lsn, s.database, current_database() AS here, s.plugin, s.wal_status,
                  ${failover} AS failover, (SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout') AS timeout
             FROM pg_replication_slots s WHERE s.slot_name = $1`,
      [slot],
      timeoutMs,
    ),
  );
  const timeout = rows[0]?.timeout ?? '60000';
  return { row: rows[0], version, walSenderTimeoutMs: Number(timeout) };
}

/** Create the slot (a failover slot from PostgreSQL 17) and its marker. Answers false when someone else was first. */
export async function createSlot(c: Queryable, slot: string, version: number, timeoutMs?: number): Promise<boolean> {
  let created = true;
  try {
    await c.query(bounded(createSlotStatement(version), [slot], timeoutMs));
  } catch (err) {
    if (!isPgError(err, DUPLICATE_OBJECT)) throw err;
    created = false;
  }
  await ensureMarker(c, slot, false, timeoutMs);
  return created;
}

export type SlotInfo = {
  confirmed: bigint;
  walSenderTimeoutMs: number;
  version: number;
  /** The marker's time to reconcile from, if the slot is ever lost (see slot-marker.ts). */
  reconcileFrom: Date | undefined;
};

const recoverHint = (source: string) => `npm run relay -- recover --source ${source} (docs/failover.md)`;

/**
 * Check the slot and, where allowed, create it: the one rule both migrate and the relay follow. `create`: this caller
 * may create a slot on a first install (migrate always; the relay with RELAY_CREATE_SLOT). A slot whose marker says
 * it existed is never created here. `streamed`: the caller is about to stream it (the marker records the first time).
 * `timeoutMs` bounds every statement: a server that does not answer (a half-open link, a lock on the marker table)
 * fails the check instead of holding the relay's session, and so its readiness, forever.
 */
export async function ensureSlot(
  c: Queryable,
  o: { slot: string; source: string; create: boolean; streamed: boolean; timeoutMs?: number; onCreated?: () => void },
): Promise<SlotInfo> {
  let state = await readSlot(c, o.slot, o.timeoutMs);
  const marker = await readMarkerOrExplain(c, o.slot, o.timeoutMs);
  if (!state.row) {
    if (marker)
      throw new SlotMissingError(
        `replication slot ${o.slot} existed (its marker in this database says so) and is gone: not creating it at the current position, which would skip every row written since; recover it with ${recoverHint(o.source)}`,
        marker.reconcileFrom,
      );
    if (!o.create)
      throw new SlotMissingError(
        `replication slot ${o.slot} does not exist; create it with npm run migrate (or set RELAY_CREATE_SLOT=true for local development)`,
        undefined,
      );
    if (await createSlot(c, o.slot, state.version, o.timeoutMs)) o.onCreated?.();
    state = await readSlot(c, o.slot, o.timeoutMs);
  }
  const row = state.row;
  if (!row) throw new Error(`slot ${o.slot} could not be read`);
  if (row.database !== row.here || row.plugin !== 'pgoutput')
    throw new SlotConflictError(
      `slot ${o.slot} belongs to database ${row.database} with plugin ${row.plugin}; choose another RELAY_SLOT_PREFIX`,
    );
  if (row.wal_status === 'lost')
    throw new SlotLostError(
      `replication slot ${o.slot} is lost (WAL removed past max_slot_wal_keep_size); recover it with ${recoverHint(o.source)}`,
      marker?.reconcileFrom,
    );
  if (row.lsn === null) throw new Error(`slot ${o.slot} has no confirmed position`);
  // A slot made before markers existed (or by hand) gets one now.
  // A standby checks every poll: nothing is written unless something is to be recorded.
  if (!marker || (o.streamed && !marker.streamed)) await ensureMarker(c, o.slot, o.streamed, o.timeoutMs);
  const reconcileFrom = marker?.reconcileFrom ?? (await readMarker(c, o.slot, o.timeoutMs))?.reconcileFrom;
  return {
    confirmed: parseLsn(row.lsn),
    walSenderTimeoutMs: state.walSenderTimeoutMs,
    version: state.version,
    reconcileFrom,
  };
}

async function readMarkerOrExplain(c: Queryable, slot: string, timeoutMs: number | undefined) {
  try {
    return await readMarker(c, slot, timeoutMs);
  } catch (err) {
    if (isPgError(err, UNDEFINED_TABLE) || isPgError(err, INVALID_SCHEMA))
      throw new Error('the slot marker table cdc_relay.slot_marker does not exist: run npm run migrate first', {
        cause: err,
      });
    throw err;
  }
}

/**
 * Migrate's step: the pgoutput slot of each source database, created where missing on a first install. Must run after
 * the migrations (the publication must exist before the slot's first position, or decoding fails on WAL older than
 * it). A slot whose marker says it existed is reported and not created; a slot of that name in another database, a
 * lost slot, a slot that is not a failover slot on 17+ are reported and left alone. Never fails the deploy for them:
 * the relay reports the same and is not ready.
 */
export async function ensureRelaySlots(
  sources: { name: string; url: string }[],
  prefix: string,
  say: (m: string) => void,
): Promise<void> {
  for (const s of sources) {
    const slot = `${prefix}_${s.name}`;
    const client = new pg.Client({ connectionString: s.url });
    await client.connect();
    try {
      const failover = (v: number) => (v >= FAILOVER_SLOTS_SINCE ? ' (failover slot)' : '');
      let created = false;
      const info = await ensureSlot(client, {
        slot,
        source: s.name,
        create: true,
        streamed: false,
        onCreated: () => (created = true),
      });
      if (created) say(`migrate: ${s.name}: created replication slot ${slot}${failover(info.version)}`);
      await warnAboutSlot(client, s.name, slot, info.version, say);
    } catch (err) {
      if (err instanceof SlotMissingError)
        say(
          `migrate: ${s.name}: WARNING not creating ${slot}: ${err.message}; events committed after ${err.reconcileFrom?.toISOString() ?? 'an unknown time'} may be unpublished`,
        );
      else if (err instanceof SlotLostError || err instanceof SlotConflictError)
        say(`migrate: ${s.name}: WARNING ${err.message}`);
      else throw err;
    } finally {
      await client.end();
    }
  }
}

async function warnAboutSlot(c: pg.Client, source: string, slot: string, version: number, say: (m: string) => void) {
  if (version < FAILOVER_SLOTS_SINCE) return;
  const setting = (
    await c.query<{ v: string | null }>("SELECT current_setting('synchronized_standby_slots', true) AS v")
  ).rows[0]?.v;
  const warning = standbySlotsWarning(version, setting);
  if (warning) say(`migrate: ${source}: WARNING ${warning}`);
  const { row } = await readSlot(c, slot);
  if (row?.failover === false)
    say(
      `migrate: ${source}: WARNING slot ${slot} is not a failover slot, so standbys do not sync it; on a replication connection: ALTER_REPLICATION_SLOT ${slot} (FAILOVER true) (docs/failover.md)`,
    );
}
