/**
 * The pgoutput decoder of the relay's stream: pg-logical-replication's parser, made safe for a long-running stream
 * and cheap per row. Pure over buffers, so it is tested against the library's own decoding.
 */
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

/** What the stream yields: pgoutput's own messages, or one that could not be decoded (ends the session). */
export type WalMessage = Pgoutput.Message | { tag: 'undecodable'; error: Error };

const JSONB_OID = 3802;

/**
 * pgoutput, made safe for a long-running stream and cheap per row:
 * - a message the parser cannot decode becomes `undecodable` instead of an exception thrown from the socket's
 *   data handler (which would crash the process and every other source with it);
 * - jsonb columns pass through as the bytes of the JSON text PostgreSQL sent (a Buffer: the body of the AMQP message
 *   as is; decoding it to a string only to encode it again, or parsing it only to serialize it again, was the
 *   relay's largest cost per message);
 * - INSERTs of a known relation are decoded here (see decodeInsert): no view object per column, timestamptz
 *   parsed without regular expressions.
 * All of it on this connection only: pg's process-wide type parsers stay untouched.
 */
export class RelayPgoutputPlugin extends PgoutputPlugin {
  private readonly relations = new Map<number, KnownRelation>();

  override parse(buffer: Buffer): Pgoutput.Message {
    let msg: Pgoutput.Message;
    try {
      if (buffer[0] === INSERT_TAG && buffer.length >= 5) {
        const known = this.relations.get(buffer.readInt32BE(1));
        if (known) return decodeInsert(buffer, known);
      }
      msg = super.parse(buffer);
    } catch (err) {
      return {
        tag: 'undecodable',
        error: err instanceof Error ? err : new Error(String(err)),
      } as unknown as Pgoutput.Message;
    }
    if (msg.tag === 'relation') {
      for (const c of msg.columns) if (c.typeOid === JSONB_OID) c.parser = (raw: unknown) => raw;
      this.relations.set(msg.relationOid, {
        relation: msg,
        decoders: msg.columns.map(columnDecoder),
        plainRows: !msg.columns.some((c) => c.name === '__proto__'),
      });
    }
    return msg;
  }
}

const INSERT_TAG = 0x49; // 'I'
const TIMESTAMPTZ_OID = 1184;

/** One column's value from its text-format bytes `buf[start, end)`. */
type ColumnDecoder = (buf: Buffer, start: number, end: number) => unknown;

/**
 * A relation the stream described. `plainRows`: its rows are ordinary objects, which V8 keeps in one shape per
 * relation (its columns always come in the same order), so every later read of a column is a fast property load;
 * an object without prototype is a dictionary, and its reads are hash lookups. Only a column named `__proto__`
 * (assigning it would set the prototype) makes rows prototype-less.
 */
type KnownRelation = { relation: Pgoutput.MessageRelation; decoders: ColumnDecoder[]; plainRows: boolean };

function columnDecoder(c: Pgoutput.RelationColumn): ColumnDecoder {
  const parser = c.parser as (text: string) => unknown;
  if (c.typeOid === JSONB_OID) {
    // A copy: the chunk belongs to the connection's read buffer, which pg reuses once this message is handled.
    return (buf, start, end) => {
      const out = Buffer.allocUnsafe(end - start);
      buf.copy(out, 0, start, end);
      return out;
    };
  }
  if (c.typeOid === TIMESTAMPTZ_OID) {
    return (buf, start, end) => {
      const ms = parseTimestamptz(buf, start, end);
      return ms === undefined ? parser(buf.toString('utf8', start, end)) : new Date(ms);
    };
  }
  // Text exactly as stored: a leading U+FEFF stays (the library's TextDecoder drops it, which changed the value).
  return (buf, start, end) => parser(buf.toString('utf8', start, end));
}

/**
 * An INSERT ('I', relation OID, 'N', the new tuple) of a relation this stream described, decoded as the library
 * would (same message shape, same column parsers) but straight from the chunk. A malformed message throws.
 */
function decodeInsert(buf: Buffer, { relation, decoders, plainRows }: KnownRelation): Pgoutput.Message {
  if (buf[5] !== 0x4e /* N */ || buf.length < 8) throw new Error('malformed insert message');
  // Unsigned, as the library reads it: a count read as negative would decode a corrupt message as an empty row.
  const n = buf.readUInt16BE(6);
  const columns = relation.columns;
  if (n > columns.length) throw new Error('insert has more columns than its relation');
  const tuple: Record<string, unknown> = plainRows ? {} : (Object.create(null) as Record<string, unknown>);
  let p = 8;
  for (let i = 0; i < n; i++) {
    const name = columns[i]!.name;
    const kind = buf[p++];
    if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
      if (p + 4 > buf.length) throw new Error('unexpected end of message');
      const len = buf.readInt32BE(p);
      p += 4;
      const end = p + len;
      if (len < 0 || end > buf.length) throw new Error('unexpected end of message');
      // A binary value is copied: the chunk is pg's read buffer, reused once this message is handled (the library
      // keeps a view into it; the relay never asks for binary values, so this only guards a future option).
      tuple[name] = kind === 0x74 ? decoders[i]!(buf, p, end) : Buffer.from(buf.subarray(p, end));
      p = end;
    } else if (kind === 0x6e /* n */) {
      tuple[name] = null;
    } else if (kind === 0x75 /* u: unchanged TOAST, never in an insert */) {
      tuple[name] = undefined;
    } else {
      throw new Error(`unknown attribute kind ${kind === undefined ? 'at end of message' : String.fromCharCode(kind)}`);
    }
  }
  return { tag: 'insert', relation, new: tuple };
}

const digits = (buf: Buffer, at: number, count: number): number => {
  let v = 0;
  for (let i = at; i < at + count; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
};

/**
 * Milliseconds since the epoch of a timestamptz in PostgreSQL's ISO output (`2026-11-27 13:04:34.817123+00`,
 * offsets `+05:30` or `-03:00:15`), years 1000 to 9999; undefined for anything else (other DateStyles, BC,
 * infinity), which the column's own parser then handles. Milliseconds are truncated, as pg's parser does.
 */
export function parseTimestamptz(buf: Buffer, start: number, end: number): number | undefined {
  // 'YYYY-MM-DD HH:MM:SS' is 19 bytes; then an optional fraction, then the offset (at least '+HH').
  if (
    end - start < 22 ||
    buf[start + 4] !== 0x2d ||
    buf[start + 7] !== 0x2d ||
    buf[start + 10] !== 0x20 ||
    buf[start + 13] !== 0x3a ||
    buf[start + 16] !== 0x3a
  )
    return undefined;
  const year = digits(buf, start, 4);
  const month = digits(buf, start + 5, 2);
  const day = digits(buf, start + 8, 2);
  const hour = digits(buf, start + 11, 2);
  const minute = digits(buf, start + 14, 2);
  const second = digits(buf, start + 17, 2);
  let p = start + 19;
  let ms = 0;
  if (buf[p] === 0x2e /* . */) {
    p++;
    let scale = 100;
    const from = p;
    while (p < end && buf[p]! >= 48 && buf[p]! <= 57) {
      ms += (buf[p]! - 48) * scale;
      scale /= 10;
      p++;
    }
    if (p === from) return undefined;
    ms = Math.floor(ms);
  }
  const sign = buf[p] === 0x2b ? 1 : buf[p] === 0x2d ? -1 : 0;
  if (sign === 0) return undefined;
  const rest = end - p - 1;
  let offset: number;
  if (rest === 2) offset = digits(buf, p + 1, 2) * 3600;
  else if (rest === 5 && buf[p + 3] === 0x3a) offset = digits(buf, p + 1, 2) * 3600 + digits(buf, p + 4, 2) * 60;
  else if (rest === 8 && buf[p + 3] === 0x3a && buf[p + 6] === 0x3a)
    offset = digits(buf, p + 1, 2) * 3600 + digits(buf, p + 4, 2) * 60 + digits(buf, p + 7, 2);
  else return undefined;
  if (year < 1000) return undefined;
  const t = Date.UTC(year, month - 1, day, hour, minute, second, ms) - sign * offset * 1000;
  return Number.isFinite(t) ? t : undefined;
}
