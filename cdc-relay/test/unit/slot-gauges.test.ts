import { slotGauges } from '../../src/slot-gauges';

describe('slot gauges', () => {
  it('reports a lost slot as lost with no safe WAL left, not as unlimited', () => {
    expect(slotGauges({ lag: '10', retained: null, safe: null, wal_status: 'lost' })).toEqual({
      lag: 10,
      retained: 0,
      safe: 0,
      lost: true,
    });
  });
  it('reports an unlimited slot as -1 and not lost', () => {
    expect(slotGauges({ lag: '0', retained: '100', safe: null, wal_status: 'reserved' })).toEqual({
      lag: 0,
      retained: 100,
      safe: -1,
      lost: false,
    });
  });
  it('reports the bytes left under max_slot_wal_keep_size', () => {
    expect(slotGauges({ lag: '0', retained: '100', safe: '4096', wal_status: 'extended' }).safe).toBe(4096);
  });
});
