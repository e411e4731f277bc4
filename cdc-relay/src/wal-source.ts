/**
 * The WAL source: one database's pgoutput stream, as typed messages (the slot itself is slots.ts's). Knows nothing
 * of the broker; the pipe decides what to acknowledge.
 */
import pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import { endWithin } from '@saga/common/db/pg';
import { ackCoalescer } from './ack-coalescer';
import { formatLsn, parseLsn } from './lsn';
import { RelayPgoutputPlugin, type WalMessage } from './pgoutput';
import { replicationSocket, takeOverCopyData } from '@saga/common/runtime/library-internals';

export type { WalMessage } from './pgoutput';

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
  return replicationSocket(svc);
}

export type WalSourceOptions = {
  url: string;
  slot: string;
  publication: string;
  applicationName: string;
  /** Bound on connecting and on each slot query: a half-open link must not hang a session forever. */
  timeoutMs: number;
  /**
   * The server's wal_sender_timeout for the replication connection (a per-connection setting), when the relay's own
   * liveness timeout is configured: both ends then give up on a half-open link after the same time, so the walsender
   * of a dead connection does not hold the slot (55006 on reconnect) for the server-wide default after the relay left.
   */
  serverTimeoutMs?: number;
};

/** `fn` with a plain (not replication) connection to the source; connecting is bounded, closing too. */
export async function withSourceClient<T>(o: WalSourceOptions, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: o.url,
    application_name: o.applicationName,
    connectionTimeoutMillis: o.timeoutMs,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await endWithin(client, o.timeoutMs);
  }
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

/** At most one status update per this many ms while transactions are acknowledged in a stream (ack-coalescer.ts). */
const ACK_INTERVAL_MS = 20;

/** CopyData of a replication stream: XLogData ('w', its data after a 25-byte header) and keepalive ('k', 18 bytes). */
const XLOG_DATA = 0x77;
const XLOG_DATA_HEADER = 25;
const KEEPALIVE = 0x6b;
const KEEPALIVE_LENGTH = 18;

/**
 * The handler of a replication stream's CopyData messages: the pgoutput message of an XLogData to `h.onMessage`
 * (through `plugin`), a keepalive's WAL end and reply request to `h.onKeepalive`; `heard` on every message. Any other
 * type is ignored, as pg-logical-replication ignores it.
 */
export function copyDataHandler(
  plugin: { parse: (data: Buffer) => unknown },
  h: Pick<StreamHandlers, 'onMessage' | 'onKeepalive'>,
  heard: () => void,
): (msg: { chunk: Buffer }) => void {
  return ({ chunk }) => {
    heard();
    if (chunk[0] === XLOG_DATA) h.onMessage(plugin.parse(chunk.subarray(XLOG_DATA_HEADER)) as WalMessage);
    else if (chunk[0] === KEEPALIVE) {
      if (chunk.length < KEEPALIVE_LENGTH)
        h.onMessage({ tag: 'undecodable', error: new Error('keepalive message too short') } satisfies WalMessage);
      else h.onKeepalive(chunk.readBigUInt64BE(1), chunk[KEEPALIVE_LENGTH - 1] !== 0);
    }
  };
}

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
  const plugin = new RelayPgoutputPlugin({ protoVersion: 1, publicationNames: [o.publication] });
  // The stream's messages, read here rather than through the library's handler (which cost about 5% of the relay's
  // CPU under a backlog in LSN strings, events and a promise per message); its events below stay as the fallback.
  const onCopyData = copyDataHandler(plugin, h, () => (lastHeard = Date.now()));
  svc.on('error', (err: Error) => reject(err));
  svc.on('start', () => {
    lastHeard = Date.now();
    takeOverCopyData(svc, onCopyData);
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
  const streaming = svc.subscribe(plugin, o.slot).then(() => {
    if (!stopped) throw new Error('replication stream ended');
  });
  const ended = Promise.race([streaming, failed]);
  ended.catch(() => undefined);

  // The library reports lsn+1; positions here are end pointers already, reported exactly (PostgreSQL's shutdown
  // waits for flush == sent, to the byte).
  const acks = ackCoalescer((lsn, ping) => void svc.acknowledge(formatLsn(lsn - 1n), ping), ACK_INTERVAL_MS);
  return {
    pause: () => socketOf(svc)?.pause(),
    resume: () => {
      // Silence is counted from here: what the server sent while we were not reading is read now.
      lastHeard = Date.now();
      socketOf(svc)?.resume();
    },
    acknowledge(lsn, ping = false) {
      if (stopped || lsn <= 0n) return;
      acks.acknowledge(lsn, ping);
    },
    silentForMs: () => Date.now() - lastHeard,
    started,
    ended,
    async stop() {
      acks.flush();
      acks.stop();
      stopped = true;
      const socket = socketOf(svc);
      const closed = svc.destroy().catch(() => undefined);
      const timer = new Promise<void>((r) => setTimeout(r, 1000).unref());
      await Promise.race([closed, timer]);
      socket?.destroy();
    },
  };
}
