/**
 * The private library shapes runtime/library-internals reaches, checked against the installed amqplib,
 * node-postgres and pg-logical-replication on real connections: an upgrade that moves one fails here by name.
 */
import { Socket } from 'node:net';
import amqp from 'amqplib';
import pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import { amqpFrameMax, amqpSocket, pgClientSocket, replicationSocket } from '@saga/common/runtime/library-internals';
import { ADMIN_URL } from '../support/env';

const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

describe('library internals', () => {
  it("amqplib: a connection's socket and negotiated frame size", async () => {
    const conn = await amqp.connect(RABBITMQ_URL);
    conn.on('error', () => undefined);
    try {
      expect(amqpSocket(conn)).toBeInstanceOf(Socket);
      expect(amqpSocket(conn)!.destroyed).toBe(false);
      expect(amqpFrameMax(conn)).toBeGreaterThanOrEqual(4096);
    } finally {
      await conn.close();
    }
  });

  it("node-postgres: a client's socket", async () => {
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    try {
      expect(pgClientSocket(client)).toBeInstanceOf(Socket);
      expect(pgClientSocket(client)!.destroyed).toBe(false);
    } finally {
      await client.end();
    }
  });

  it("pg-logical-replication: the replication connection's socket", async () => {
    const service = new LogicalReplicationService(
      { connectionString: ADMIN_URL },
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    service.on('error', () => undefined);
    expect(replicationSocket(service)).toBeUndefined();
    // client() opens the replication connection that subscribe() streams on, without starting a stream.
    await (service as unknown as { client: () => Promise<unknown> }).client();
    try {
      expect(replicationSocket(service)).toBeInstanceOf(Socket);
    } finally {
      await service.stop();
    }
  });

  it('answers undefined for an object of another shape', () => {
    for (const other of [undefined, {}, { connection: {} }]) {
      expect(amqpSocket(other)).toBeUndefined();
      expect(amqpFrameMax(other)).toBeUndefined();
      expect(pgClientSocket(other)).toBeUndefined();
      expect(replicationSocket(other)).toBeUndefined();
    }
  });
});
