/** The relay's pgoutput decoding against the library's: same rows, jsonb as its bytes, timestamptz as pg parses it. */
import pg from 'pg';
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { parseTimestamptz, RelayPgoutputPlugin } from '../../src/pgoutput';

const u8 = (n: number) => Buffer.from([n]);
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string) => Buffer.concat([Buffer.from(s), u8(0)]);
const COLUMNS: [string, number][] = [
  ['id', 2950],
  ['aggregatetype', 25],
  ['aggregateid', 25],
  ['type', 25],
  ['payload', 3802],
  ['headers', 3802],
  ['created_at', 1184],
  ['n', 23],
];
const OID = 16400;
const relationMsg = (oid = OID) =>
  Buffer.concat([
    u8(0x52),
    i32(oid),
    cstr('public'),
    cstr('outbox'),
    u8(0x64),
    i16(COLUMNS.length),
    ...COLUMNS.map(([n, t], i) => Buffer.concat([u8(i === 0 ? 1 : 0), cstr(n), i32(t), i32(-1)])),
  ]);
type Cell = string | null | { binary: Buffer };
const cell = (v: Cell) => {
  if (v === null) return u8(0x6e);
  if (typeof v === 'object') return Buffer.concat([u8(0x62), i32(v.binary.length), v.binary]);
  const b = Buffer.from(v);
  return Buffer.concat([u8(0x74), i32(b.length), b]);
};
const insertMsg = (cells: Cell[], oid = OID) =>
  Buffer.concat([u8(0x49), i32(oid), u8(0x4e), i16(cells.length), ...cells.map(cell)]);
const cells = (over: Partial<Record<string, Cell>> = {}): Cell[] => {
  const base: Record<string, Cell> = {
    id: '0b7d6f2e-8d0c-4a8e-9f67-0d0c2b3a4e5f',
    aggregatetype: 'order',
    aggregateid: 'ördér-1 ✓',
    type: 'OrderPlaced',
    payload: '{"data": {"name": "Zoë ✓"}, "version": 1}',
    headers: '{"causationId": null, "correlationId": "c1"}',
    created_at: '2026-11-27 13:04:34.817123+00',
    n: '42',
    ...over,
  };
  return COLUMNS.map(([n]) => base[n]!);
};
const opts = { protoVersion: 1 as const, publicationNames: ['p'] };
/** The library's decoding, with jsonb passed through as text (what the relay did before decoding inserts itself). */
class Reference extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const msg = super.parse(buffer);
    if (msg.tag === 'relation') for (const c of msg.columns) if (c.typeOid === 3802) c.parser = (raw: unknown) => raw;
    return msg;
  }
}

function both(...msgs: Buffer[]): [Pgoutput.Message, Pgoutput.Message] {
  const ours = new RelayPgoutputPlugin(opts);
  const lib = new Reference(opts);
  let a!: Pgoutput.Message;
  let b!: Pgoutput.Message;
  for (const m of msgs) {
    a = ours.parse(m);
    try {
      b = lib.parse(m);
    } catch (err) {
      b = { tag: 'undecodable', error: err } as unknown as Pgoutput.Message;
    }
  }
  return [a, b];
}
const JSONB = new Set(['payload', 'headers', 'only']);
const textOf = (row: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) && JSONB.has(k) ? v.toString('utf8') : v]),
  );

describe('relay pgoutput decoding', () => {
  it('decodes an insert as the library does, with jsonb columns as the bytes of their text', () => {
    const [ours, lib] = both(relationMsg(), insertMsg(cells()));
    expect(ours.tag).toBe('insert');
    const row = (ours as Pgoutput.MessageInsert).new;
    expect(Buffer.isBuffer(row.payload)).toBe(true);
    expect(Buffer.isBuffer(row.headers)).toBe(true);
    expect(textOf(row)).toEqual({ ...(lib as Pgoutput.MessageInsert).new });
    expect((ours as Pgoutput.MessageInsert).relation).toMatchObject({ name: 'outbox', relationOid: OID });
    expect(row.created_at).toEqual(new Date('2026-11-27T13:04:34.817Z'));
    expect(row.n).toBe(42);
  });

  it('keeps a column named __proto__ as a value of the row, never as its prototype', () => {
    const columns: [string, number][] = [
      ['id', 25],
      ['__proto__', 3802],
      ['type', 25],
    ];
    const relation = Buffer.concat([
      u8(0x52),
      i32(OID + 1),
      cstr('public'),
      cstr('odd'),
      u8(0x64),
      i16(columns.length),
      ...columns.map(([n, t]) => Buffer.concat([u8(0), cstr(n), i32(t), i32(-1)])),
    ]);
    const [ours] = both(relation, insertMsg(['a', '{"polluted": true}', 'T'], OID + 1));
    const row = (ours as Pgoutput.MessageInsert).new;
    expect(Object.hasOwn(row, '__proto__')).toBe(true);
    expect(String(row['__proto__'])).toBe('{"polluted": true}');
    expect((row as { polluted?: unknown }).polluted).toBeUndefined();
    expect(row.id).toBe('a');
    // An ordinary relation's rows are ordinary objects.
    const [plain] = both(relationMsg(), insertMsg(cells()));
    expect(Object.getPrototypeOf((plain as Pgoutput.MessageInsert).new)).toBe(Object.prototype);
  });

  it('decodes nulls, binary values and a shorter tuple as the library does', () => {
    const [ours, lib] = both(
      relationMsg(),
      insertMsg(cells({ headers: null, aggregateid: { binary: Buffer.from([1, 2, 3]) } }).slice(0, 7)),
    );
    expect(textOf((ours as Pgoutput.MessageInsert).new)).toEqual({ ...(lib as Pgoutput.MessageInsert).new });
  });

  it.each([
    ['another DateStyle', '11/27/2026 13:04:34.817123 UTC'],
    ['a BC time', '0044-03-15 12:00:00+00 BC'],
    ['infinity', 'infinity'],
    ['an offset in minutes', '2026-11-27 13:04:34+05:30'],
    ['an offset in seconds', '1890-01-01 00:00:00-00:25:21'],
    ['a negative offset, no fraction', '2026-11-27 23:59:59-08'],
    ['a year after 9999', '12026-11-27 13:04:34.5+00'],
    ['an early year', '0099-01-01 00:00:00+00'],
  ])('parses a timestamptz in %s as pg does', (_what, text) => {
    const [ours, lib] = both(relationMsg(), insertMsg(cells({ created_at: text })));
    expect((ours as Pgoutput.MessageInsert).new.created_at).toEqual((lib as Pgoutput.MessageInsert).new.created_at);
  });

  it('parses timestamptz text like pg, to the millisecond, across offsets and fractions', () => {
    const parse = pg.types.getTypeParser(1184) as (s: string) => Date;
    const fractions = ['', '.1', '.12', '.123', '.1234', '.999999', '.000001', '.057', '.29'];
    const offsets = ['+00', '-03', '+05:30', '-09:30', '+14', '-00:25:21'];
    for (let i = 0; i < 400; i++) {
      const t = new Date(Date.UTC(1970 + (i % 60), i % 12, 1 + (i % 28), i % 24, (i * 7) % 60, (i * 13) % 60));
      const text = `${t.toISOString().slice(0, 19).replace('T', ' ')}${fractions[i % fractions.length]}${offsets[i % offsets.length]}`;
      const b = Buffer.from(`xx${text}yy`);
      expect([text, parseTimestamptz(b, 2, b.length - 2)]).toEqual([text, parse(text).getTime()]);
    }
  });

  it('leaves text it does not recognize to the column parser', () => {
    for (const text of [
      '2026-11-27T13:04:34+00',
      '2026-11-27 13:04:34',
      '2026-11-27 13:04:34.+00',
      '2026-11-27 13:04:34+0',
      '2026-11-27 13:04:34+00:0',
      'x026-11-27 13:04:34+00',
      '2026-11-27 13:04:34 BC+00',
    ]) {
      const b = Buffer.from(text);
      expect([text, parseTimestamptz(b, 0, b.length)]).toEqual([text, undefined]);
    }
  });

  it('turns a malformed insert into an undecodable message, never an exception', () => {
    const good = insertMsg(cells());
    for (const bad of [
      good.subarray(0, 20),
      good.subarray(0, good.length - 1),
      Buffer.concat([good.subarray(0, 8), u8(0x7a)]),
      insertMsg(cells().concat(['extra'])),
    ]) {
      const [ours] = both(relationMsg(), bad);
      expect(ours.tag).toBe('undecodable');
    }
  });

  it('leaves inserts of relations it was not told about to the library (which cannot decode them either)', () => {
    const [ours] = both(relationMsg(), insertMsg(cells(), OID + 1));
    expect(ours.tag).toBe('undecodable');
  });

  it('follows a relation described again (a schema change) with its new columns', () => {
    const ours = new RelayPgoutputPlugin(opts);
    ours.parse(relationMsg());
    const changed = Buffer.concat([
      u8(0x52),
      i32(OID),
      cstr('public'),
      cstr('outbox'),
      u8(0x64),
      i16(1),
      u8(1),
      cstr('only'),
      i32(3802),
      i32(-1),
    ]);
    ours.parse(changed);
    const m = ours.parse(insertMsg(['{"a": 1}'])) as Pgoutput.MessageInsert;
    expect(textOf(m.new)).toEqual({ only: '{"a": 1}' });
  });

  it('keeps jsonb and binary values when pg reuses its read buffer for the next message (regression: they must be copies)', () => {
    const ours = new RelayPgoutputPlugin(opts);
    ours.parse(relationMsg());
    const input = insertMsg(cells({ aggregateid: { binary: Buffer.from([1, 2, 3]) } }));
    const m = ours.parse(input) as Pgoutput.MessageInsert;
    input.fill(0x78); // what pg-protocol does to the chunk when the next bytes arrive
    expect(String(m.new.payload)).toBe('{"data": {"name": "Zoë ✓"}, "version": 1}');
    expect(String(m.new.headers)).toBe('{"causationId": null, "correlationId": "c1"}');
    expect([...(m.new.aggregateid as Buffer)]).toEqual([1, 2, 3]);
  });

  it('turns a column count read as negative into an undecodable message, as the library fails it', () => {
    const [ours, lib] = [new RelayPgoutputPlugin(opts), new Reference(opts)];
    ours.parse(relationMsg());
    lib.parse(relationMsg());
    const bad = Buffer.concat([u8(0x49), i32(OID), u8(0x4e), Buffer.from([0xff, 0xff])]);
    expect(ours.parse(bad).tag).toBe('undecodable');
    expect(() => lib.parse(bad)).toThrow();
  });

  it('keeps a leading byte order mark in text as stored (the library dropped it and changed the value)', () => {
    const ours = new RelayPgoutputPlugin(opts);
    ours.parse(relationMsg());
    const m = ours.parse(insertMsg(cells({ aggregateid: '\ufeffabc' }))) as Pgoutput.MessageInsert;
    expect(m.new.aggregateid).toBe('\ufeffabc');
  });

  it('follows a relation described again with a column changing type (jsonb to text, timestamptz to text)', () => {
    const ours = new RelayPgoutputPlugin(opts);
    ours.parse(relationMsg());
    const retyped = Buffer.concat([
      u8(0x52),
      i32(OID),
      cstr('public'),
      cstr('outbox'),
      u8(0x64),
      i16(2),
      u8(1),
      cstr('payload'),
      i32(25),
      i32(-1),
      u8(0),
      cstr('created_at'),
      i32(25),
      i32(-1),
    ]);
    ours.parse(retyped);
    const m = ours.parse(insertMsg(['{"a": 1}', '2026-11-27 13:04:34+00'])) as Pgoutput.MessageInsert;
    expect(m.new).toEqual({ payload: '{"a": 1}', created_at: '2026-11-27 13:04:34+00' });
  });
});
