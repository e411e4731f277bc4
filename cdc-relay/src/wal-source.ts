/**
 * The WAL source: one database's replication slot and its pgoutput stream, as typed messages. Knows nothing of
 * the broker; the pipe decides what to acknowledge.
 */
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { isPgError } from '@saga/common/pg';
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
 * pgoutput, made safe for a long-running stream:
 * - a message the parser cannot decode becomes `undecodable` instead of an exception thrown from the socket's
 *   data handler (which would crash the process and every other source with it);
 * - jsonb columns pass through as the JSON text PostgreSQL sent (the body of the AMQP message as is; parsing it only
 *   to serialize it again was the relay's largest cost per message). Set on this connection's relation messages,
 *   so pg's process-wide type parsers stay untouched.
 */
export class RelayPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    let msg: Pgoutput.Message;
    try {
      msg = super.parse(buffer);
    } catch (err) {
      return { tag: 'undecodable', error: err instanceof Error ? err : new Error(String(err)) } as unknown as Pgoutput.Message;
    }
    if (msg.tag === 'relation') {
      for (const c of msg.columns) if (c.typeOid === JSONB_OID) c.parser = (raw: unknown) => raw;
    }
    return msg;
  }
}

type Socket = { pause: () => void; resume: () => void; destroy: () => void; setKeepAlive?: (on: boolean, delayMs: number) => void };
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
  const client = new pg.Client({ connectionString: o.url, application_name: o.applicationName, connectionTimeoutMillis: o.timeoutMs });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const read = () =>
      client.query<{ lsn: string | null; database: string; here: string; plugin: string; wal_status: string | null; timeout: string }>({
        query_timeout: o.timeoutMs,
        text: `SELECT confirmed_flush_lsn::text AS lsn, database, current_database() AS here, plugin, wal_status,
                (SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout') AS timeout
           FROM pg_replication_slots WHERE slot_name = $1`,
        values: [o.slot],
      } as pg.QueryConfig);
    let { rows } = await read();
    if (rows.length === 0) {
      if (!o.createSlot) {
        throw new SlotMissingError(`replication slot ${o.slot} does not exist; create it with npm run migrate (or set RELAY_CREATE_SLOT=true for local development)`);
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
      throw new Error(`slot ${o.slot} belongs to database ${row.database} with plugin ${row.plugin}; choose another RELAY_SLOT_PREFIX`);
    }
    if (row.wal_status === 'lost') throw new SlotLostError(`replication slot ${o.slot} is lost (WAL removed past max_slot_wal_keep_size); see the README's recovery steps`);
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
    client.end().then(() => true, () => true),
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
