/**
 * Recovery of a lost slot, the operator's one command (`npm run relay -- recover --source <name>`): the relay and
 * migrate never create a slot whose marker says it existed (slots.ts), because a new slot starts at the current
 * position and would skip every row written since the last acknowledged commit. Recovery creates it and then
 * reconciles the window from the table: everything after the marker's time is either republished from the table or
 * streamed from the new slot.
 */
import pg from 'pg';
import { readMarker, resetMarker } from './slot-marker';
import { createSlot, readSlot } from './slots';

export type RecoverArgs = { source: string; marginSeconds: number };

/** The default margin before the marker's time: transactions that began before it and committed after it. */
export const DEFAULT_MARGIN_SECONDS = 60;

/** Pure: the arguments after `recover`, or why not. `--source <name>`, optional `--margin-seconds <n>`. */
export function parseRecoverArgs(args: readonly string[], sources: readonly string[]): RecoverArgs | string {
  const values: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const [key, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (!['--source', '--margin-seconds'].includes(key)) return `unknown argument: ${a}`;
    const value = inline ?? args[++i];
    if (value === undefined || value.startsWith('--')) return `${key} needs a value`;
    values[key.slice(2)] = value;
  }
  if (!values.source) return `--source is required (one of ${sources.join(', ')})`;
  if (!sources.includes(values.source))
    return `--source: unknown source ${values.source} (RELAY_SOURCES has ${sources.join(', ')})`;
  const margin = values['margin-seconds'] ?? String(DEFAULT_MARGIN_SECONDS);
  if (!/^\d+$/.test(margin)) return `--margin-seconds: expected a whole number of seconds (got ${margin})`;
  return { source: values.source, marginSeconds: Number(margin) };
}

/** Why recovery cannot go on; nothing was changed. */
export class RecoveryRefused extends Error {
  override name = 'RecoveryRefused';
}

/**
 * Check that recovery is needed and possible, then create the slot again (a lost one is dropped first) and reset its
 * marker. Answers the time to reconcile from. Refuses, changing nothing, when the slot is there and usable, when no
 * marker says where to start, or when the outbox retention no longer covers the window (rows may be pruned).
 */
export async function recreateSlot(
  c: pg.ClientBase,
  o: { slot: string; marginSeconds: number; retentionHours: number },
): Promise<{ since: Date; dropped: boolean }> {
  const state = await readSlot(c, o.slot);
  if (state.row && state.row.database !== state.row.here)
    throw new RecoveryRefused(`slot ${o.slot} belongs to database ${state.row.database}; choose another prefix`);
  if (state.row && state.row.wal_status !== 'lost')
    throw new RecoveryRefused(
      `slot ${o.slot} exists and is usable: nothing to recover (to republish a window, use reconcile)`,
    );
  const marker = await readMarker(c, o.slot);
  if (!marker)
    throw new RecoveryRefused(
      `no marker for ${o.slot} in this database: the slot never existed here, so nothing was skipped; npm run migrate creates it`,
    );
  const since = new Date(marker.reconcileFrom.getTime() - o.marginSeconds * 1000);
  // The database's clock: the services prune by it (created_at < now() - retention).
  const { rows } = await c.query<{ horizon: Date }>('SELECT now() - make_interval(hours => $1) AS horizon', [
    o.retentionHours,
  ]);
  const horizon = rows[0]!.horizon;
  if (since < horizon)
    throw new RecoveryRefused(
      `outbox retention (OUTBOX_RETENTION_HOURS=${o.retentionHours}) no longer covers the window: rows from ${since.toISOString()} are needed, rows before ${horizon.toISOString()} may be pruned already; the events between cannot all be republished from the outbox (see docs/failover.md, "Retention exceeded")`,
    );
  const dropped = state.row?.wal_status === 'lost';
  if (dropped) await c.query('SELECT pg_drop_replication_slot($1)', [o.slot]);
  await createSlot(c, o.slot, state.version);
  await resetMarker(c, o.slot);
  return { since, dropped };
}
