/**
 * Slot creation for the setup path (`npm run migrate`, the migrate Job): the relay's slots are made next to the
 * publication, by an administrator, once. The relay itself then only uses them (RELAY_CREATE_SLOT off in
 * production), so a slot that disappears is an alarm instead of being recreated at the current position.
 */
import pg from 'pg';
import { z } from 'zod';

export const SlotEnv = z.object({
  /** Must match the relay's RELAY_SLOT_PREFIX: the slot of source `x` is `<prefix>_x`. */
  RELAY_SLOT_PREFIX: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('saga_outbox'),
});

/** SQLSTATE 42710 duplicate_object: created meanwhile by someone else. */
const DUPLICATE_OBJECT = '42710';

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
  return 'synchronized_standby_slots is empty: with a standby that syncs the relay slot, set it to the standby physical slot so the relay never receives a change the standby lacks (README: PostgreSQL failover); without a standby, ignore this';
}

/**
 * Create the pgoutput slot of each source database when missing. Must run after the migrations (the publication
 * must exist before the slot's first position, or decoding fails on WAL older than it). A slot of that name that
 * belongs to another database is reported and left alone.
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
      const version = Number(
        (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v,
      );
      const failoverColumn = version >= FAILOVER_SLOTS_SINCE ? 'failover' : 'NULL::boolean AS failover';
      const { rows } = await client.query<{
        database: string;
        here: string;
        wal_status: string | null;
        failover: boolean | null;
      }>(
        `SELECT database, current_database() AS here, wal_status, ${failoverColumn} FROM pg_replication_slots WHERE slot_name = $1`,
        [slot],
      );
      if (version >= FAILOVER_SLOTS_SINCE) {
        const setting = (
          await client.query<{ v: string | null }>("SELECT current_setting('synchronized_standby_slots', true) AS v")
        ).rows[0]?.v;
        const warning = standbySlotsWarning(version, setting);
        if (warning) say(`migrate: ${s.name}: WARNING ${warning}`);
      }
      const row = rows[0];
      if (!row) {
        try {
          await client.query(createSlotStatement(version), [slot]);
          say(
            `migrate: ${s.name}: created replication slot ${slot}${version >= FAILOVER_SLOTS_SINCE ? ' (failover slot)' : ''}`,
          );
        } catch (err) {
          if ((err as { code?: string }).code !== DUPLICATE_OBJECT) throw err;
        }
      } else if (row.database !== row.here) {
        say(
          `migrate: ${s.name}: WARNING slot ${slot} belongs to database ${row.database}, not ${row.here}: set RELAY_SLOT_PREFIX`,
        );
      } else if (row.wal_status === 'lost') {
        say(`migrate: ${s.name}: WARNING slot ${slot} is lost (wal_status lost); see the README's recovery steps`);
      } else if (row.failover === false) {
        say(
          `migrate: ${s.name}: WARNING slot ${slot} is not a failover slot, so standbys do not sync it; on a replication connection: ALTER_REPLICATION_SLOT ${slot} (FAILOVER true) (README: PostgreSQL failover)`,
        );
      }
    } finally {
      await client.end();
    }
  }
}
