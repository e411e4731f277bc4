/**
 * The one rule migrate and the relay follow for slots, against a fake server: a first install creates the slot (a
 * failover slot on PostgreSQL 17), a slot whose marker says it existed is never created again, a lost slot is
 * reported with the time to reconcile from.
 */
import { ensureSlot, SlotLostError, SlotMissingError } from '../../src/slots';

type Slot = { lsn: string; wal_status: string };

/** A server with at most one slot and one marker row; records every statement. */
function fakeServer(o: { version: number; slot?: Slot; marker?: { since: Date; streamed: boolean } }) {
  const statements: string[] = [];
  /** Each statement's client-side bound (pg's query_timeout), undefined where it had none. */
  const timeouts: (number | undefined)[] = [];
  let slot = o.slot;
  let marker = o.marker;
  const query = async (q: string | { text: string; query_timeout?: number }, _values?: unknown[]) => {
    const text = typeof q === 'string' ? q : q.text;
    statements.push(text.replace(/\s+/g, ' ').trim());
    timeouts.push(typeof q === 'string' ? undefined : q.query_timeout);
    if (text.includes("current_setting('server_version_num')")) return { rows: [{ v: String(o.version) }] };
    if (text.includes('FROM pg_replication_slots'))
      return {
        rows: slot
          ? [{ ...slot, database: 'orders', here: 'orders', plugin: 'pgoutput', failover: null, timeout: '60000' }]
          : [],
      };
    if (text.includes('pg_create_logical_replication_slot')) {
      slot = { lsn: '0/100', wal_status: 'reserved' };
      return { rows: [] };
    }
    if (text.includes('FROM cdc_relay.slot_marker')) return { rows: marker ? [marker] : [] };
    if (text.includes('INSERT INTO cdc_relay.slot_marker')) {
      marker ??= { since: new Date(), streamed: text.includes('first_streamed_at') };
      return { rows: [] };
    }
    throw new Error(`unexpected statement: ${text}`);
  };
  return { client: { query } as never, statements, timeouts };
}

const opts = { slot: 'saga_outbox_order', source: 'order', create: true, streamed: true };
const created = (statements: string[]) => statements.filter((s) => s.includes('pg_create_logical_replication_slot'));

describe('ensuring a relay slot', () => {
  it('bounds every statement by the timeout it is given, so a server that never answers cannot hold the check', async () => {
    const fresh = fakeServer({ version: 170002 });
    await ensureSlot(fresh.client, { ...opts, timeoutMs: 1234 });
    const existing = fakeServer({ version: 150004, slot: { lsn: '0/200', wal_status: 'reserved' } });
    await ensureSlot(existing.client, { ...opts, timeoutMs: 1234 });
    for (const server of [fresh, existing]) {
      expect(server.statements.length).toBeGreaterThan(2);
      expect(server.timeouts).toEqual(server.statements.map(() => 1234));
    }
  });

  it('creates a failover slot on a first install on PostgreSQL 17, and marks it', async () => {
    const server = fakeServer({ version: 170002 });
    const info = await ensureSlot(server.client, opts);
    expect(created(server.statements)).toEqual([
      "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)",
    ]);
    expect(server.statements.some((s) => s.startsWith('INSERT INTO cdc_relay.slot_marker'))).toBe(true);
    expect(info.confirmed).toBe(0x100n);
  });

  it('creates a plain slot before PostgreSQL 17', async () => {
    const server = fakeServer({ version: 160004 });
    await ensureSlot(server.client, opts);
    expect(created(server.statements)).toEqual(["SELECT pg_create_logical_replication_slot($1, 'pgoutput')"]);
  });

  it('never creates a slot whose marker says it existed, and answers the time to reconcile from', async () => {
    const since = new Date('2026-12-06T08:00:00Z');
    const server = fakeServer({ version: 170002, marker: { since, streamed: true } });
    const err = await ensureSlot(server.client, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlotMissingError);
    expect((err as SlotMissingError).reconcileFrom).toEqual(since);
    expect(created(server.statements)).toEqual([]);
  });

  it('does not create a missing slot where it may not (RELAY_CREATE_SLOT off), with no time to reconcile from', async () => {
    const server = fakeServer({ version: 150000 });
    const err = await ensureSlot(server.client, { ...opts, create: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlotMissingError);
    expect((err as SlotMissingError).reconcileFrom).toBeUndefined();
    expect(created(server.statements)).toEqual([]);
  });

  it('reports a lost slot with the marker time', async () => {
    const since = new Date('2026-12-06T08:00:00Z');
    const server = fakeServer({
      version: 150000,
      slot: { lsn: '0/100', wal_status: 'lost' },
      marker: { since, streamed: true },
    });
    const err = await ensureSlot(server.client, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlotLostError);
    expect((err as SlotLostError).reconcileFrom).toEqual(since);
  });

  it('writes nothing when the slot and a streamed marker exist (a standby polls this every second)', async () => {
    const server = fakeServer({
      version: 150000,
      slot: { lsn: '0/200', wal_status: 'reserved' },
      marker: { since: new Date(), streamed: true },
    });
    await ensureSlot(server.client, opts);
    expect(server.statements.filter((s) => /^(INSERT|UPDATE|SELECT pg_create)/.test(s))).toEqual([]);
  });
});
