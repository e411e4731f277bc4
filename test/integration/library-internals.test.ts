/**
 * The private library shapes runtime/library-internals reaches, checked against the installed amqplib,
 * node-postgres and pg-logical-replication on real connections: an upgrade that moves one fails here by name.
 */
import { Socket } from 'node:net';
import amqp from 'amqplib';
import pg from 'pg';
import pino from 'pino';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import {
  amqpFrameMax,
  amqplibModule,
  amqpSocket,
  amqpTableEncoder,
  pgClientSocket,
  pgParsedStatements,
  pgQueryClass,
  replaceAmqpPublishEncoder,
  replicationSocket,
  takeOverCopyData,
  sonicBoomBuffered,
} from '@saga/common/runtime/library-internals';
import { ADMIN_URL } from '../support/env';
import { waitUntil } from '../support/wait';

type AmqplibDefs = {
  encodeMethod: (id: number, channel: number, fields: Record<string, unknown>) => Buffer;
  encodeProperties: (id: number, channel: number, size: number, fields: Record<string, unknown>) => Buffer;
  BasicPublish: number;
  BasicProperties: number;
};
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

  it('amqplib: publishes go through a replaced encoder, and the broker stores what it writes', async () => {
    const conn = await amqp.connect(RABBITMQ_URL);
    conn.on('error', () => undefined);
    try {
      const seen: string[] = [];
      expect(
        replaceAmqpPublishEncoder(conn, (channel, frameMax, fields, props, content) => {
          seen.push(String(props.messageId));
          // The encoding amqplib would write, built from its own encoders, so that only the seam is under test.
          const defs = amqplibModule('lib/defs.js') as AmqplibDefs;
          const frame = amqplibModule('lib/frame.js') as { makeBodyFrame: (c: number, b: Buffer) => Buffer };
          expect(frameMax).toBeGreaterThanOrEqual(4096);
          return Buffer.concat([
            defs.encodeMethod(defs.BasicPublish, channel, fields),
            defs.encodeProperties(defs.BasicProperties, channel, content.length, props),
            frame.makeBodyFrame(channel, content),
          ]);
        }),
      ).toBe(true);
      const ch = await conn.createConfirmChannel();
      const q = await ch.assertQueue('', { exclusive: true });
      ch.sendToQueue(q.queue, Buffer.from('through the seam'), { messageId: 'seam-1', headers: { a: 1 } });
      await ch.waitForConfirms();
      const got = await ch.get(q.queue, { noAck: true });
      expect(seen).toEqual(['seam-1']);
      expect(got && got.content.toString()).toBe('through the seam');
      expect(got && got.properties.headers).toEqual({ a: 1 });
      expect(typeof amqpTableEncoder()).toBe('function');
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

  it("node-postgres: the statements a client parsed, and the Query class a statement's messages are sent by", async () => {
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    try {
      expect(pgParsedStatements(client)).toEqual({});
      await client.query({ name: 'internals.one', text: 'SELECT 1 AS one' });
      expect(pgParsedStatements(client)).toEqual({ 'internals.one': 'SELECT 1 AS one' });
      const Query = pgQueryClass();
      for (const m of ['requiresPreparation', 'prepare', '_getRows', 'handleCommandComplete', 'handleError'] as const)
        expect(typeof Query.prototype[m]).toBe('function');
      const q = new Query({ text: 'SELECT 1' });
      expect(q.portal).toBe('');
      expect(typeof (q as unknown as { submit: unknown }).submit).toBe('function');
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

  it("pg-logical-replication: a stream's CopyData reaches the handler that took it over, not the library's", async () => {
    const slot = `internals_copydata_${process.pid}`;
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    const service = new LogicalReplicationService(
      { connectionString: ADMIN_URL },
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    service.on('error', () => undefined);
    let libraryHeartbeats = 0;
    service.on('heartbeat', () => {
      libraryHeartbeats++;
    });
    const kinds: number[] = [];
    const tookOver = new Promise<boolean>((resolve) =>
      service.on('start', () => resolve(takeOverCopyData(service, ({ chunk }) => kinds.push(chunk[0]!)))),
    );
    const streaming = service
      .subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: ['none'] }), slot)
      .catch(() => undefined);
    try {
      expect(await tookOver).toBe(true);
      // A status update that asks for a reply: the server answers with a keepalive ('k').
      await service.acknowledge('0/0', true);
      await waitUntil(() => kinds.includes(0x6b), { timeoutMs: 10_000, message: 'a keepalive' });
      expect(libraryHeartbeats).toBe(0);
    } finally {
      await service.stop();
      await streaming;
      await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
      await admin.end();
    }
  });

  it('sonic-boom: the bytes a destination holds until they are written', async () => {
    const dest = pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 });
    await new Promise((resolve) => dest.once('ready', resolve));
    expect(sonicBoomBuffered(dest)).toBe(0);
    dest.write('a line\n');
    expect(sonicBoomBuffered(dest)).toBe(7);
    dest.flushSync();
    expect(sonicBoomBuffered(dest)).toBe(0);
    dest.end();
  });

  it('answers undefined for an object of another shape', () => {
    for (const other of [undefined, {}, { connection: {} }]) {
      expect(amqpSocket(other)).toBeUndefined();
      expect(amqpFrameMax(other)).toBeUndefined();
      expect(pgClientSocket(other)).toBeUndefined();
      expect(pgParsedStatements(other)).toBeUndefined();
      expect(replicationSocket(other)).toBeUndefined();
      expect(replaceAmqpPublishEncoder(other, () => Buffer.alloc(0))).toBe(false);
      expect(takeOverCopyData(other, () => undefined)).toBe(false);
      expect(sonicBoomBuffered(other)).toBeUndefined();
    }
  });
});
