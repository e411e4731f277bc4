/** Which statement creates the relay's slot: a failover slot where the server can sync it to standbys. */
import { createSlotStatement } from '../../src/slots';

describe('relay slot creation', () => {
  it('creates a plain pgoutput slot before PostgreSQL 17', () => {
    expect(createSlotStatement(150010)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput')");
    expect(createSlotStatement(160004)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput')");
  });

  it('creates a failover slot (not temporary, no two-phase) from PostgreSQL 17', () => {
    expect(createSlotStatement(170000)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)");
    expect(createSlotStatement(180001)).toBe("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)");
  });
});
