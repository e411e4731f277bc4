/** Which statement creates the relay's slot: a failover slot where the server can sync it to standbys. */
import { createSlotStatement, standbySlotsWarning } from '../../src/slots';

describe('relay slot creation', () => {
  it('creates a plain pgoutput slot before PostgreSQL 17', () => {
    expect(createSlotStatement(150010)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput')");
    expect(createSlotStatement(160004)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput')");
  });

  it('creates a failover slot (not temporary, no two-phase) from PostgreSQL 17', () => {
    expect(createSlotStatement(170000)).toBe(
      "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)",
    );
    expect(createSlotStatement(180001)).toBe(
      "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)",
    );
  });

  it('warns from PostgreSQL 17 when synchronized_standby_slots names no standby slot, and only then', () => {
    expect(standbySlotsWarning(170002, '')).toMatch(/synchronized_standby_slots is empty/);
    expect(standbySlotsWarning(180000, null)).toMatch(/synchronized_standby_slots is empty/);
    expect(standbySlotsWarning(170002, 'standby1_slot')).toBeUndefined();
    expect(standbySlotsWarning(160004, '')).toBeUndefined();
  });
});
