/**
 * Every reach into a library's private state, in one place. Each is a shape the library does not promise to keep:
 * test/integration/library-internals.test.ts checks each against the installed versions, so an upgrade that moves
 * one fails there, by name, instead of silently turning a timeout or a backpressure pause into a no-op.
 */
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The objects hold a `net.Socket` (a `tls.TLSSocket` over TLS, a subclass). */
type WithStream = { stream?: Socket };

/**
 * The socket under an amqplib ChannelModel (`model.connection.stream`). Used to cut a connection whose close
 * handshake never completes, and to batch frame writes.
 */
export function amqpSocket(model: unknown): Socket | undefined {
  return (model as { connection?: WithStream } | undefined)?.connection?.stream;
}

/** The frame size an amqplib connection negotiated (`model.connection.frameMax`), or undefined. */
export function amqpFrameMax(model: unknown): number | undefined {
  return (model as { connection?: { frameMax?: number } } | undefined)?.connection?.frameMax;
}

/** The socket under a node-postgres Client (`client.connection.stream`), to destroy a half-open connection. */
export function pgClientSocket(client: unknown): Socket | undefined {
  return (client as { connection?: WithStream } | undefined)?.connection?.stream;
}

/**
 * The replication connection's socket of a pg-logical-replication LogicalReplicationService (its private
 * `_connection`, node-postgres' Connection, and that one's `stream`): the library has no call to pause reading for
 * backpressure, and its `stop()` waits for a goodbye a half-open link never sends.
 */
export function replicationSocket(service: unknown): Socket | undefined {
  return (service as { _connection?: WithStream } | undefined)?._connection?.stream;
}

/** A node-postgres Connection's events, as far as the replication stream uses them. */
type CopyDataEmitter = {
  listeners: (event: string) => ((...args: unknown[]) => void)[];
  removeListener: (event: string, fn: (...args: unknown[]) => void) => unknown;
  on: (event: string, fn: (msg: { chunk: Buffer }) => void) => unknown;
};

/**
 * Replaces pg-logical-replication's handler of the replication stream's CopyData messages (the last 'copyData'
 * listener on its private `_connection`, added by `subscribe()` after node-postgres' own) with `handler`. The
 * library's handler builds two LSN strings, emits through EventEmitter2 and starts an async acknowledgement for
 * every message; the relay reads positions from the messages themselves. Call it from the service's 'start' event:
 * the library emits it once that listener is in place and before any CopyData is read. False (nothing changed) when
 * the shape is not there.
 */
export function takeOverCopyData(service: unknown, handler: (msg: { chunk: Buffer }) => void): boolean {
  const conn = (service as { _connection?: Partial<CopyDataEmitter> | null } | undefined)?._connection;
  if (
    !conn ||
    typeof conn.listeners !== 'function' ||
    typeof conn.removeListener !== 'function' ||
    typeof conn.on !== 'function'
  )
    return false;
  const listeners = conn.listeners('copyData');
  if (listeners.length < 2) return false;
  conn.removeListener('copyData', listeners[listeners.length - 1]!);
  conn.on('copyData', handler);
  return true;
}

const load = createRequire(__filename);

/**
 * A module inside amqplib's package by its path there (`lib/codec.js`): the package exports only its two APIs, so
 * a private module is required by path. Tests also reach amqplib's own encoders this way, to compare bytes.
 */
export function amqplibModule(file: string): unknown {
  return load(path.join(path.dirname(load.resolve('amqplib')), file));
}

/** amqplib's field-table encoder (`lib/codec.js` `encodeTable`): writes `table` at `offset`, returns its length. */
export function amqpTableEncoder(): (buffer: Buffer, table: unknown, offset: number) => number {
  return (amqplibModule('lib/codec.js') as { encodeTable: AmqpTableEncoder }).encodeTable;
}
type AmqpTableEncoder = (buffer: Buffer, table: unknown, offset: number) => number;

/** What amqplib's `Connection.sendMessage` receives for a publish: method and properties ids, fields, body. */
export type AmqpPublishEncoder = (
  channel: number,
  frameMax: number,
  fields: Record<string, unknown>,
  props: Record<string, unknown>,
  content: Buffer,
) => Buffer;

type AmqpConnectionInternals = {
  sendMessage: (...args: unknown[]) => boolean;
  frameMax: number;
  sentSinceLastCheck: boolean;
  channels: ({ buffer: { write: (b: Buffer) => boolean } } | undefined)[];
};

/**
 * Encode the publishes of an amqplib connection (`model.connection.sendMessage`) with `encode`, written to the
 * channel's outgoing buffer as amqplib writes them (`channels[ch].buffer`, marking `sentSinceLastCheck` for the
 * heartbeat). Anything but a basic.publish with a Buffer body goes to amqplib's own. False when the shape is not
 * there, so the caller keeps amqplib's encoder.
 */
export function replaceAmqpPublishEncoder(model: unknown, encode: AmqpPublishEncoder): boolean {
  const conn = (model as { connection?: AmqpConnectionInternals } | undefined)?.connection;
  if (!conn || typeof conn.sendMessage !== 'function' || !Array.isArray(conn.channels)) return false;
  const defs = amqplibModule('lib/defs.js') as { BasicPublish: number; BasicProperties: number };
  const original = conn.sendMessage;
  conn.sendMessage = function (this: AmqpConnectionInternals, ...args: unknown[]): boolean {
    const [channel, method, fields, properties, props, content] = args;
    if (method !== defs.BasicPublish || properties !== defs.BasicProperties || !Buffer.isBuffer(content))
      return original.apply(this, args);
    const bytes = encode(
      channel as number,
      this.frameMax,
      fields as Record<string, unknown>,
      props as Record<string, unknown>,
      content,
    );
    const out = this.channels[channel as number]!.buffer;
    this.sentSinceLastCheck = true;
    return out.write(bytes);
  };
  return true;
}

/**
 * The statements a node-postgres client has parsed on its connection, by name (`client.connection.parsedStatements`:
 * node-postgres sends a named statement's Parse only the first time), or undefined.
 */
export function pgParsedStatements(client: unknown): Record<string, string | undefined> | undefined {
  const parsed = (client as { connection?: { parsedStatements?: unknown } } | undefined)?.connection?.parsedStatements;
  return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, string | undefined>) : undefined;
}

/** The parts of a node-postgres Connection (`client.connection`) that a query writes its messages with. */
export type PgConnection = {
  parsedStatements: Record<string, string | undefined>;
  parse: (msg: { text: string; name: string; types: unknown[] }) => void;
  bind: (msg: { portal: string; statement: string; values: unknown[] }) => void;
  execute: (msg: { portal: string; rows: number | undefined }) => void;
  sync: () => void;
};

/** node-postgres' Query, as far as a subclass overrides and reads it. */
export declare class PgQuery {
  constructor(config: unknown);
  name?: string;
  portal: string;
  requiresPreparation(): boolean;
  prepare(connection: PgConnection): void;
  _getRows(connection: PgConnection, rows: number | undefined): void;
  handleCommandComplete(msg: unknown, connection: PgConnection): void;
  handleError(err: unknown, connection: PgConnection): void;
}

/**
 * node-postgres' Query class (`pg/lib/query`, which the package exports by path): the object a client submits to
 * the server for each query, subclassed to send more messages around a statement (db/transaction-edges.ts).
 */
export function pgQueryClass(): typeof PgQuery {
  return load('pg/lib/query') as typeof PgQuery;
}

/**
 * Bytes a sonic-boom destination (pino's) holds, written or being written (`_len`); undefined for another shape.
 * Lets a flush timer stop once nothing waits.
 */
export function sonicBoomBuffered(dest: unknown): number | undefined {
  const len = (dest as { _len?: unknown } | undefined)?._len;
  return typeof len === 'number' ? len : undefined;
}
