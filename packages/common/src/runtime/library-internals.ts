/**
 * Every reach into a library's private state, in one place. Each is a shape the library does not promise to keep:
 * test/integration/library-internals.test.ts checks each against the installed versions, so an upgrade that moves
 * one fails there, by name, instead of silently turning a timeout or a backpressure pause into a no-op.
 */
import type { Socket } from 'node:net';

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
