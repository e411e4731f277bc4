/** The relay pipe's rules, with a fake WAL and a fake broker: no network. */
import type { Options } from 'amqplib';
import { createRelayPipe, type PublisherPort, type Settled } from '../../src/pipe';
import { begin, commit, insert, row, pipeFixture } from '../support/wal-fixtures';

type Sent = {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
  settle: (s: Settled) => void;
};

function fakes(
  opts: { maxInFlight?: number; acked?: bigint; throwOn?: (routingKey: string) => Error | undefined } = {},
) {
  const acks: bigint[] = [];
  const sent: Sent[] = [];
  const failures: Error[] = [];
  let paused = false;
  let writable = true;
  const publisher: PublisherPort = {
    publish(exchange, routingKey, content, options, settle) {
      const err = opts.throwOn?.(routingKey);
      if (err) throw err;
      sent.push({ exchange, routingKey, content, options, settle });
    },
    writable: () => writable,
  };
  const pipe = createRelayPipe({
    wal: { pause: () => (paused = true), resume: () => (paused = false), acknowledge: (l) => acks.push(l) },
    publisher,
    ...pipeFixture,
    maxInFlight: opts.maxInFlight ?? 100,
    acked: opts.acked ?? 0n,
    onFail: (e) => failures.push(e),
  });
  return {
    pipe,
    acks,
    sent,
    failures,
    paused: () => paused,
    setWritable: (w: boolean) => (writable = w),
  };
}

/** One transaction of `rows` at commit end `end`. */
const txn = (f: ReturnType<typeof fakes>, end: bigint, ...rows: Record<string, unknown>[]) => {
  f.pipe.onMessage(begin());
  for (const r of rows) f.pipe.onMessage(insert(r));
  f.pipe.onMessage(commit(end));
};

describe('relay pipe', () => {
  it('acknowledges a commit only after every message of it and of earlier transactions is confirmed', () => {
    const f = fakes();
    txn(f, 100n, row(), row());
    txn(f, 200n, row());
    f.sent[2]!.settle('confirmed');
    f.pipe.flushAck();
    expect(f.acks).toEqual([]);
    f.sent[0]!.settle('confirmed');
    f.sent[1]!.settle('confirmed');
    f.pipe.flushAck();
    expect(f.acks).toEqual([200n]);
  });

  it('ignores inserts into other tables and acknowledges nothing at or below the slot position', () => {
    const f = fakes({ acked: 500n });
    txn(f, 400n, row());
    f.pipe.onMessage(begin());
    f.pipe.onMessage(insert(row(), 'orders'));
    f.pipe.onMessage(commit(600n));
    expect(f.sent).toHaveLength(1);
    f.sent[0]!.settle('confirmed');
    f.pipe.flushAck();
    expect(f.acks).toEqual([600n]);
  });

  it('reports with each acknowledgement the commit time of the last transaction it covers (where a reconcile starts)', () => {
    const f = fakes();
    f.pipe.onMessage(begin());
    f.pipe.onMessage(insert(row()));
    f.pipe.onMessage(commit(100n, 1_700_000_000_000_000n));
    f.pipe.onMessage(begin());
    f.pipe.onMessage(insert(row()));
    f.pipe.onMessage(commit(200n, 1_700_000_001_000_000n));
    expect(f.pipe.ackedCommitTimeUs()).toBeUndefined();
    f.sent[0]!.settle('confirmed');
    f.pipe.flushAck();
    // Only the first transaction is acknowledged: the second's time must not be reported yet.
    expect(f.pipe.ackedCommitTimeUs()).toBe(1_700_000_000_000_000n);
    f.sent[1]!.settle('confirmed');
    f.pipe.flushAck();
    expect(f.acks).toEqual([100n, 200n]);
    expect(f.pipe.ackedCommitTimeUs()).toBe(1_700_000_001_000_000n);
  });

  it('fails the session on an insert outside a transaction', () => {
    const f = fakes();
    f.pipe.onMessage(insert(row()));
    expect(f.failures.map((e) => e.message)).toEqual(['insert outside a transaction']);
    expect(f.sent).toHaveLength(0);
  });

  describe('a row the AMQP encoder cannot take goes to the invalid queue and the stream goes on', () => {
    it('sends a row whose publish the client refuses to encode to the invalid queue, with the reason', () => {
      const f = fakes({
        throwOn: (rk) => (rk === 'order.OrderPlaced' ? new TypeError("Field 'x' is the wrong type") : undefined),
      });
      const bad = row();
      txn(f, 100n, bad);
      expect(f.failures).toEqual([]);
      expect(f.sent).toHaveLength(1);
      expect(f.sent[0]).toMatchObject({
        exchange: '',
        routingKey: 'saga.events.invalid',
        options: { mandatory: true, messageId: bad.id },
      });
      expect(String(f.sent[0]!.options.headers!['x-invalid-reason'])).toContain(
        "the AMQP client cannot encode it: Field 'x' is the wrong type",
      );
      f.sent[0]!.settle('confirmed');
      f.pipe.flushAck();
      expect(f.acks).toEqual([100n]);
    });

    it('sends a row the codec finds unencodable to the invalid queue and publishes the next row', () => {
      const f = fakes();
      txn(f, 100n, row({ type: 'T'.repeat(200), aggregatetype: 'a'.repeat(100) }), row());
      expect(f.sent.map((s) => s.routingKey)).toEqual(['saga.events.invalid', 'order.OrderPlaced']);
      expect(f.sent[0]!.options.headers!['x-invalid-reason']).toBe('routing key is over 255 bytes');
    });
  });

  describe('a returned message never counts as confirmed', () => {
    it('fails the session and acknowledges nothing when a message is refused, also while draining', async () => {
      const f = fakes();
      txn(f, 100n, row());
      txn(f, 200n, row());
      const draining = f.pipe.drain(Date.now() + 5_000);
      f.sent[0]!.settle('refused');
      f.sent[1]!.settle('confirmed');
      await draining;
      expect(f.failures).toHaveLength(1);
      expect(f.acks).toEqual([]);
    });
  });

  describe('after a failure nothing is acknowledged by any path', () => {
    it('keepalives, the ack timer and late confirms acknowledge nothing once the session failed', () => {
      const f = fakes();
      txn(f, 100n, row());
      f.pipe.fail(new Error('broker channel closed'));
      f.sent[0]!.settle('confirmed');
      f.pipe.flushAck();
      f.pipe.onKeepalive(900n, true);
      f.pipe.onKeepalive(1000n, false);
      expect(f.acks).toEqual([]);
      // and nothing more is handled
      txn(f, 300n, row());
      expect(f.sent).toHaveLength(1);
    });

    it('control: without a failure, an idle keepalive moves the slot', () => {
      const f = fakes();
      f.pipe.onKeepalive(900n, false);
      expect(f.acks).toEqual([900n]);
    });

    it('a keepalive never moves the slot mid-transaction or while a confirm is outstanding', () => {
      const f = fakes();
      f.pipe.onMessage(begin());
      f.pipe.onKeepalive(50n, false);
      f.pipe.onMessage(insert(row()));
      f.pipe.onMessage(commit(100n));
      f.pipe.onKeepalive(150n, false);
      expect(f.acks).toEqual([]);
      f.sent[0]!.settle('confirmed');
      f.pipe.onKeepalive(150n, false);
      expect(f.acks).toEqual([100n, 150n]);
    });
  });

  describe('the invalid-queue copy is mandatory and must be stored', () => {
    it('fails the session when the invalid-queue copy is refused (returned or nacked)', () => {
      const f = fakes();
      txn(f, 100n, row({ id: 'not-a-uuid' }));
      expect(f.sent[0]).toMatchObject({ routingKey: 'saga.events.invalid', options: { mandatory: true } });
      f.sent[0]!.settle('refused');
      f.pipe.flushAck();
      expect(f.failures).toHaveLength(1);
      expect(f.acks).toEqual([]);
    });
  });

  describe('a message the parser cannot decode ends the session, not the process', () => {
    it('fails the session on an undecodable message', () => {
      const f = fakes();
      expect(() =>
        f.pipe.onMessage({ tag: 'undecodable', error: new Error('unknown pgoutput message') }),
      ).not.toThrow();
      expect(f.failures.map((e) => e.message)).toEqual([
        'replication message could not be decoded: unknown pgoutput message',
      ]);
    });
  });

  describe('backpressure', () => {
    it('pauses the WAL at the in-flight window and resumes once a tenth of it is free', () => {
      const f = fakes({ maxInFlight: 10 });
      f.pipe.onMessage(begin());
      for (let i = 0; i < 10; i++) f.pipe.onMessage(insert(row()));
      expect(f.paused()).toBe(true);
      f.sent[0]!.settle('confirmed');
      expect(f.paused()).toBe(true);
      f.sent[1]!.settle('confirmed');
      expect(f.paused()).toBe(false);
    });

    it('messages held behind their aggregate take no room in the window: a hot aggregate does not stop the others', () => {
      const f = fakes({ maxInFlight: 4 });
      const hot = (n: number) => Array.from({ length: n }, () => row({ aggregateid: 'hot' }));
      const first = hot(3);
      f.pipe.onMessage(begin());
      for (const r of first) f.pipe.onMessage(insert(r));
      const others = [row(), row()];
      for (const r of others) f.pipe.onMessage(insert(r));
      // One message of the hot aggregate in flight, two held; the others go at once and reading goes on.
      expect(f.sent.map((s) => s.options.messageId)).toEqual([first[0]!.id, others[0]!.id, others[1]!.id]);
      expect(f.paused()).toBe(false);
      // Held messages are bounded too: as many as the window pauses reading.
      for (const r of hot(2)) f.pipe.onMessage(insert(r));
      expect(f.paused()).toBe(true);
      for (const s of f.sent.slice(1)) s.settle('confirmed');
      expect(f.paused()).toBe(true);
      // The first hot message confirmed releases the next: three held, below a tenth free of four.
      f.sent[0]!.settle('confirmed');
      expect(f.paused()).toBe(false);
    });

    it('releases a long run of one aggregate in order, one message per confirm', () => {
      const f = fakes({ maxInFlight: 100_000 });
      const rows = Array.from({ length: 50_000 }, () => row({ aggregateid: 'hot' }));
      txn(f, 100n, ...rows);
      for (let i = 0; i < rows.length; i++) {
        expect(f.sent).toHaveLength(i + 1);
        f.sent[i]!.settle('confirmed');
      }
      expect(f.sent.every((s, i) => s.options.messageId === rows[i]!.id)).toBe(true);
      f.pipe.flushAck();
      expect(f.acks).toEqual([100n]);
      expect(f.pipe.inFlight()).toBe(0);
    });

    it('pauses while the client buffer is full and resumes when it drains', () => {
      const f = fakes();
      f.setWritable(false);
      txn(f, 100n, row());
      expect(f.paused()).toBe(true);
      f.setWritable(true);
      f.pipe.onWritable();
      expect(f.paused()).toBe(false);
    });

    it('a full client buffer pauses reading only until it drains, while the window is not full', () => {
      // One chunk of WAL publishes more than amqplib buffers before writing: that must not drain the window too.
      const f = fakes({ maxInFlight: 10 });
      f.pipe.onMessage(begin());
      for (let i = 0; i < 8; i++) f.pipe.onMessage(insert(row()));
      f.setWritable(false);
      f.pipe.onMessage(insert(row()));
      expect(f.paused()).toBe(true);
      f.setWritable(true);
      f.pipe.onWritable();
      expect(f.paused()).toBe(false);
      expect(f.sent).toHaveLength(9);
    });

    it('a pause for a full buffer waits like one for a full window once the window fills during it', () => {
      const f = fakes({ maxInFlight: 10 });
      f.pipe.onMessage(begin());
      for (let i = 0; i < 3; i++) f.pipe.onMessage(insert(row()));
      f.setWritable(false);
      // The rest of the network chunk is still handled while reading is paused: the window fills.
      for (let i = 0; i < 7; i++) f.pipe.onMessage(insert(row()));
      f.setWritable(true);
      f.pipe.onWritable();
      expect(f.paused()).toBe(true);
      f.sent[0]!.settle('confirmed');
      expect(f.paused()).toBe(true);
      f.sent[1]!.settle('confirmed');
      expect(f.paused()).toBe(false);
    });
  });
});
