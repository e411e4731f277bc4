/**
 * The WAL source: one database's replication slot and its pgoutput stream, as typed messages. Knows nothing of
 * the broker; the pipe decides what to acknowledge.
 */
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { isPgError } from '@saga/common/db/pg';
import { formatLsn, parseLsn } from './lsn';

/** What the stream yields: pgoutput's own messages, or one that could not be decoded (ends the session). */
export type WalMessage = Pgoutput.Message | { tag: 'undecodable'; error: Error };

/** SQLSTATE 42710 duplicate_object: another relay created the slot first. */
const DUPLICATE_OBJECT = '42710';
const JSONB_OID = 3802;

/** The slot does not exist and this relay may not create it (RELAY_CREATE_SLOT off, or it used the slot before). */
export class SlotMissingError extends Error {
  override name = 'SlotMissingError';
}
/** The server invalidated the slot (max_slot_wal_keep_size): WAL it still needed is gone. */
export class SlotLostError extends Error {
  override name = 'SlotLostError';
}

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
  private readonly relations = new Map<number, { relation: Pgoutput.MessageRelation; decoders: ColumnDecoder[] }>();

  override parse(buffer: Buffer): Pgoutput.Message {
    let msg: Pgoutput.Message;
    try {
      if (buffer[0] === INSERT_TAG && buffer.length >= 5) {
        const known = this.relations.get(buffer.readInt32BE(1));
        if (known) return decodeInsert(buffer, known.relation, known.decoders);
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
      this.relations.set(msg.relationOid, { relation: msg, decoders: msg.columns.map(columnDecoder) });
    }
    return msg;
  }
}

const INSERT_TAG = 0x49; // 'I'
const TIMESTAMPTZ_OID = 1184;

/** One column's value from its text-format bytes `buf[start, end)`. */
type ColumnDecoder = (buf: Buffer, start: number, end: number) => unknown;

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
function decodeInsert(buf: Buffer, relation: Pgoutput.MessageRelation, decoders: ColumnDecoder[]): Pgoutput.Message {
  if (buf[5] !== 0x4e /* N */ || buf.length < 8) throw new Error('malformed insert message');
  // Unsigned, as the library reads it: a count read as negative would decode a corrupt message as an empty row.
  const n = buf.readUInt16BE(6);
  const columns = relation.columns;
  if (n > columns.length) throw new Error('insert has more columns than its relation');
  const tuple: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
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

type Socket = {
  pause: () => void;
  resume: () => void;
  destroy: () => void;
  setKeepAlive?: (on: boolean, delayMs: number) => void;
};
/**
 * The replication connection's socket. pg-logical-replication keeps it private (`_connection.stream`); it is
 * reached here only, to pause reading for backpressure (the library has no such call) and to destroy a
 * half-open connection (`end()` waits for a goodbye that never comes).
 */
function socketOf(svc: LogicalReplicationService): Socket | undefined {
  return (svc as unknown as { _connection?: { stream?: Socket } })._connection?.stream;
}

export type SlotInfo = { confirmed: bigint; walSenderTimeoutMs: number };

export type WalSourceOptions = {
  url: string;
  slot: string;
  publication: string;
  applicationName: string;
  /** Create the slot when it is missing (local development); otherwise a missing slot is an error. */
  createSlot: boolean;
  onCreated?: () => void;
  /** Bound on connecting and on each slot query: a half-open link must not hang a session forever. */
  timeoutMs: number;
  /**
   * The server's wal_sender_timeout for the replication connection (a per-connection setting), when the relay's own
   * liveness timeout is configured: both ends then give up on a half-open link after the same time, so the walsender
   * of a dead connection does not hold the slot (55006 on reconnect) for the server-wide default after the relay left.
   */
  serverTimeoutMs?: number;
};

/**
 * Read (and, when allowed, create) the slot; answer its confirmed position and the server's wal_sender_timeout.
 * Never reads the outbox table. A slot that disappeared is not recreated silently: that would start at the current
 * position and skip every row written in between.
 */
export async function ensureSlot(o: WalSourceOptions): Promise<SlotInfo> {
  // Connecting and reading are bounded; creating a slot is not: it waits for the transactions running at that moment.
  const client = new pg.Client({
    connectionString: o.url,
    application_name: o.applicationName,
    connectionTimeoutMillis: o.timeoutMs,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const read = () =>
      client.query<{
        lsn: string | null;
        database: string;
        here: string;
        plugin: string;
        wal_status: string | null;
        timeout: string;
      }>({
        query_timeout: o.timeoutMs,
        text: `SELECT confirmed_flush_lsn::text AS lsn, database, current_database() AS here, plugin, wal_status,
                (SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout') AS timeout
           FROM pg_replication_slots WHERE slot_name = $1`,
        values: [o.slot],
      } as pg.QueryConfig);
    let { rows } = await read();
    if (rows.length === 0) {
      if (!o.createSlot) {
        throw new SlotMissingError(
          `replication slot ${o.slot} does not exist; create it with npm run migrate (or set RELAY_CREATE_SLOT=true for local development)`,
        );
      }
      try {
        await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [o.slot]);
        o.onCreated?.();
      } catch (err) {
        if (!isPgError(err, DUPLICATE_OBJECT)) throw err;
      }
      ({ rows } = await read());
    }
    const row = rows[0];
    if (!row) throw new Error(`slot ${o.slot} could not be read`);
    if (row.database !== row.here || row.plugin !== 'pgoutput') {
      throw new Error(
        `slot ${o.slot} belongs to database ${row.database} with plugin ${row.plugin}; choose another RELAY_SLOT_PREFIX`,
      );
    }
    if (row.wal_status === 'lost')
      throw new SlotLostError(
        `replication slot ${o.slot} is lost (WAL removed past max_slot_wal_keep_size); see the README's recovery steps`,
      );
    if (row.lsn === null) throw new Error(`slot ${o.slot} has no confirmed position`);
    return { confirmed: parseLsn(row.lsn), walSenderTimeoutMs: Number(row.timeout) };
  } finally {
    await endWithin(client, o.timeoutMs);
  }
}

/**
 * `client.end()` sends Terminate and waits for the server to close: on a half-open link that never happens. Give it
 * `ms`, then destroy the socket.
 */
async function endWithin(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    client.end().then(
      () => true,
      () => true,
    ),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  if (!ended) (client as unknown as { connection?: { stream?: Socket } }).connection?.stream?.destroy();
}

export type WalStream = {
  pause: () => void;
  resume: () => void;
  /** Report `lsn` (an end position) as flushed; a no-op once the stream stopped. */
  acknowledge: (lsn: bigint, ping?: boolean) => void;
  /** Milliseconds since the server last sent anything (data or keepalive). */
  silentForMs: () => number;
  /** Resolves when the server started streaming. */
  started: Promise<void>;
  /** Settles when the stream ends: resolves on a requested stop, rejects on any error. */
  ended: Promise<void>;
  /** Stop streaming; a connection that does not close within a second is destroyed. */
  stop: () => Promise<void>;
};

export type StreamHandlers = {
  onStart: () => void;
  onMessage: (msg: WalMessage) => void;
  onKeepalive: (walEnd: bigint, shouldRespond: boolean) => void;
};

/**
 * Start streaming the slot from its confirmed position. Messages are handled synchronously as they are decoded
 * (no flowControl queue): every publish of one network chunk goes out in one write, and backpressure pauses the
 * socket itself, so nothing piles up in memory.
 */
export function openWalStream(o: WalSourceOptions & { keepAliveMs: number }, h: StreamHandlers): WalStream {
  const svc = new LogicalReplicationService(
    // TCP keepalive: a peer that vanished is noticed by the kernel even while reading is paused.
    {
      connectionString: o.url,
      application_name: o.applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: o.keepAliveMs,
      connectionTimeoutMillis: o.timeoutMs,
      ...(o.serverTimeoutMs ? { options: `-c wal_sender_timeout=${Math.round(o.serverTimeoutMs)}` } : {}),
    },
    // auto:false is not enough: the library's status timer acknowledges the last LSN it *received*; timeoutSeconds 0
    // turns that timer off, and the relay sends every status update itself.
    { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
  );
  let lastHeard = Date.now();
  let stopped = false;
  let reject!: (err: Error) => void;
  const failed = new Promise<never>((_, r) => (reject = r));
  let onStarted!: () => void;
  const started = new Promise<void>((r) => (onStarted = r));
  svc.on('error', (err: Error) => reject(err));
  svc.on('start', () => {
    lastHeard = Date.now();
    onStarted();
    h.onStart();
  });
  svc.on('data', (_lsn: string, msg: WalMessage) => {
    lastHeard = Date.now();
    h.onMessage(msg);
  });
  svc.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
    lastHeard = Date.now();
    h.onKeepalive(parseLsn(lsn), shouldRespond);
  });
  const plugin = new RelayPgoutputPlugin({ protoVersion: 1, publicationNames: [o.publication] });
  const streaming = svc.subscribe(plugin, o.slot).then(() => {
    if (!stopped) throw new Error('replication stream ended');
  });
  const ended = Promise.race([streaming, failed]);
  ended.catch(() => undefined);

  return {
    pause: () => socketOf(svc)?.pause(),
    resume: () => {
      // Silence is counted from here: what the server sent while we were not reading is read now.
      lastHeard = Date.now();
      socketOf(svc)?.resume();
    },
    acknowledge(lsn, ping = false) {
      // The library reports lsn+1; positions here are end pointers already, reported exactly (PostgreSQL's shutdown
      // waits for flush == sent, to the byte).
      if (stopped || lsn <= 0n) return;
      void svc.acknowledge(formatLsn(lsn - 1n), ping);
    },
    silentForMs: () => Date.now() - lastHeard,
    started,
    ended,
    async stop() {
      stopped = true;
      const socket = socketOf(svc);
      const closed = svc.destroy().catch(() => undefined);
      const timer = new Promise<void>((r) => setTimeout(r, 1000).unref());
      await Promise.race([closed, timer]);
      socket?.destroy();
    },
  };
}
