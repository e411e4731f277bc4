/** pgoutput messages for the relay's unit tests (the shapes pg-logical-replication emits), one definition for all. */
import { encodeOutboxRow } from '@saga/common/messaging/envelope-codec';
import { formatLsn } from '../../src/lsn';
import type { WalMessage } from '../../src/pgoutput';

/** The pipe's options that name the source, its table and the broker's names, as the unit tests use them. */
export const pipeFixture = {
  encode: (row: Record<string, unknown>) => encodeOutboxRow(row, 'order', 'outbox'),
  source: 'order',
  table: 'outbox',
  exchange: 'saga.events',
  invalidQueue: 'saga.events.invalid',
};

let n = 0;
/** An outbox row as pgoutput decodes it, with a fresh id and aggregate of its own; `extra` overrides columns. */
export const row = (extra: Record<string, unknown> = {}) => ({
  id: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
  aggregatetype: 'order',
  aggregateid: `o${n}`,
  type: 'OrderPlaced',
  payload: '{"version": 1, "data": {}}',
  headers: '{"correlationId": "o1", "causationId": null}',
  created_at: new Date('2026-01-01T00:00:00Z'),
  ...extra,
});
export const relation = {
  tag: 'relation' as const,
  relationOid: 1,
  schema: 'public',
  name: 'outbox',
  replicaIdentity: 'default' as const,
  columns: [],
  keyColumns: [],
};
export const begin = (): WalMessage => ({ tag: 'begin', commitLsn: null, commitTime: 0n, xid: 1 });
export const insert = (r: Record<string, unknown> = row(), table = 'outbox'): WalMessage => ({
  tag: 'insert',
  relation: { ...relation, name: table },
  new: r,
});
/** A commit ending at `end`, committed at `timeUs` (microseconds since the Unix epoch, as the parser gives it). */
export const commit = (end: bigint, timeUs = 0n): WalMessage => ({
  tag: 'commit',
  flags: 0,
  commitLsn: null,
  commitEndLsn: formatLsn(end),
  commitTime: timeUs,
});
