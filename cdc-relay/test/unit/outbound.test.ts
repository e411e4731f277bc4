/**
 * What goes to the broker when, and what a refusal means: per-aggregate order, the window after a failure, a nack sent
 * again in the session, a refusal the broker closes the channel for diverted to the invalid queue. The real pipe, a
 * fake WAL and a fake broker.
 */
import type { Options } from 'amqplib';
import { BrokerRefusalError, NACKS_BEFORE_NEW_CHANNEL } from '../../src/outbound';
import { createRelayPipe, type PipeOptions, type PublisherPort, type Refusal, type Settled } from '../../src/pipe';
import { begin, commit, insert, row, pipeFixture } from '../support/wal-fixtures';

type Sent = {
  routingKey: string;
  content: Buffer;
  options: Options.Publish;
  settle: (s: Settled, why?: Refusal) => void;
};

function fakes(opts: Partial<PipeOptions> = {}) {
  const acks: bigint[] = [];
  const sent: Sent[] = [];
  const failures: Error[] = [];
  const refused: Refusal[] = [];
  let resent = 0;
  const publisher: PublisherPort = {
    publish: (_exchange, routingKey, content, options, settle) => sent.push({ routingKey, content, options, settle }),
    writable: () => true,
  };
  const pipe = createRelayPipe({
    wal: { pause: () => undefined, resume: () => undefined, acknowledge: (l) => acks.push(l) },
    publisher,
    ...pipeFixture,
    maxInFlight: 100,
    acked: 0n,
    onFail: (e) => failures.push(e),
    retry: { baseMs: 10, capMs: 10 },
    events: { refused: (_id, why) => refused.push(why), resent: () => resent++ },
    ...opts,
  });
  const idOf = (s: Sent) => s.options.messageId;
  return { pipe, acks, sent, failures, refused, idOf, resent: () => resent };
}

const txn = (f: ReturnType<typeof fakes>, end: bigint, ...rows: Record<string, unknown>[]) => {
  f.pipe.onMessage(begin());
  for (const r of rows) f.pipe.onMessage(insert(r));
  f.pipe.onMessage(commit(end));
};
const NACK: Refusal = { text: 'nacked' };
const CC_REFUSAL: Refusal = {
  code: 406,
  text: 'Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - invalid arg \'CC\' for message"',
};

afterEach(() => jest.useRealTimers());

describe('per-aggregate order with fan-out', () => {
  it('never publishes a message of an aggregate while an earlier one of it is unconfirmed, so a queue that refused the first never gets the second before it', () => {
    jest.useFakeTimers();
    const f = fakes();
    const placed = row({ aggregateid: 'order-1', type: 'OrderPlaced' });
    const other = row({ aggregateid: 'order-2' });
    const cancelled = row({ aggregateid: 'order-1', type: 'OrderCancelled' });
    txn(f, 100n, placed);
    txn(f, 200n, other, cancelled);
    // OrderCancelled waits; another aggregate does not.
    expect(f.sent.map(f.idOf)).toEqual([placed.id, other.id]);
    // A full monitor queue refuses OrderPlaced (inventory's queue stored it): it is sent again, still before
    // OrderCancelled.
    f.sent[0]!.settle('refused', NACK);
    f.sent[1]!.settle('confirmed');
    expect(f.sent.map(f.idOf)).toEqual([placed.id, other.id]);
    jest.advanceTimersByTime(10);
    expect(f.sent.map(f.idOf)).toEqual([placed.id, other.id, placed.id]);
    f.sent[2]!.settle('confirmed');
    expect(f.sent.map(f.idOf)).toEqual([placed.id, other.id, placed.id, cancelled.id]);
    f.sent[3]!.settle('confirmed');
    f.pipe.flushAck();
    expect(f.acks).toEqual([200n]);
    expect(f.failures).toEqual([]);
    expect(f.refused).toEqual([NACK]);
  });
});

describe('without per-aggregate order (RELAY_ORDER_PER_AGGREGATE=false)', () => {
  it('publishes every message of an aggregate at once', () => {
    const f = fakes({ orderPerAggregate: false });
    const a = row({ aggregateid: 'order-1' });
    const b = row({ aggregateid: 'order-1' });
    txn(f, 100n, a, b);
    expect(f.sent.map(f.idOf)).toEqual([a.id, b.id]);
  });
});

describe('a nack', () => {
  it('a message waiting out its retry still takes room in the window: reading stops at the window', () => {
    jest.useFakeTimers();
    let paused = false;
    const wal = { pause: () => (paused = true), resume: () => (paused = false), acknowledge: () => undefined };
    const f = fakes({ maxInFlight: 3, orderPerAggregate: false, wal });
    f.pipe.onMessage(begin());
    for (let i = 0; i < 3; i++) f.pipe.onMessage(insert(row()));
    expect(paused).toBe(true);
    f.sent[0]!.settle('refused', NACK);
    f.sent[1]!.settle('refused', NACK);
    f.sent[2]!.settle('confirmed');
    expect(paused).toBe(false);
    // Two wait for their retry: one more row fills the window of three.
    f.pipe.onMessage(insert(row()));
    expect(paused).toBe(true);
    jest.advanceTimersByTime(10);
    expect(f.sent).toHaveLength(6);
    expect(f.resent()).toBe(2);
  });

  it('does not end the session: a transaction larger than the gap between refusals is still acknowledged, each refused message sent once more', () => {
    jest.useFakeTimers();
    const f = fakes();
    const rows = Array.from({ length: 50 }, () => row());
    txn(f, 100n, ...rows);
    const nacked = new Set<string>();
    for (let i = 0; i < f.sent.length; i++) {
      const s = f.sent[i]!;
      if (i % 10 === 0 && !nacked.has(String(f.idOf(s)))) {
        nacked.add(String(f.idOf(s)));
        s.settle('refused', NACK);
      } else s.settle('confirmed');
      if (i === f.sent.length - 1) jest.advanceTimersByTime(10);
    }
    f.pipe.flushAck();
    expect(f.failures).toEqual([]);
    expect(f.acks).toEqual([100n]);
    // The duplicate tail while one queue keeps refusing: one extra publish per refusal, nothing else again, counted.
    expect(f.sent).toHaveLength(50 + nacked.size);
    expect(f.resent()).toBe(nacked.size);
  });

  it('ends the session when one message is refused again and again, so the next one publishes on a new channel', () => {
    jest.useFakeTimers();
    const f = fakes();
    const r = row();
    txn(f, 100n, r);
    for (let i = 1; i < NACKS_BEFORE_NEW_CHANNEL; i++) {
      f.sent[f.sent.length - 1]!.settle('refused', NACK);
      jest.advanceTimersByTime(10);
      expect(f.failures).toEqual([]);
    }
    expect(f.sent).toHaveLength(NACKS_BEFORE_NEW_CHANNEL);
    f.sent[f.sent.length - 1]!.settle('refused', NACK);
    expect(f.failures).toHaveLength(1);
    expect(f.failures[0]!.message).toContain(`${r.id}`);
    jest.advanceTimersByTime(1000);
    expect(f.sent).toHaveLength(NACKS_BEFORE_NEW_CHANNEL);
    f.pipe.flushAck();
    expect(f.acks).toEqual([]);
  });

  it('halves the window, so a queue that keeps refusing gets fewer copies in flight', () => {
    jest.useFakeTimers();
    const f = fakes({ maxInFlight: 8 });
    txn(f, 100n, ...Array.from({ length: 40 }, () => row()));
    expect(f.pipe.window()).toBe(8);
    f.sent[0]!.settle('refused', NACK);
    expect(f.pipe.window()).toBe(4);
    f.sent[1]!.settle('refused', NACK);
    f.sent[2]!.settle('refused', NACK);
    expect(f.pipe.window()).toBe(1);
  });
});

describe('a transaction across sessions', () => {
  const rows = Array.from({ length: 6 }, () => row());
  const beginTx = () => ({ ...begin(), xid: 7, commitLsn: '0/100' }) as ReturnType<typeof begin>;
  const stream = (f: ReturnType<typeof fakes>, withCommit = true) => {
    f.pipe.onMessage(beginTx());
    for (const r of rows) f.pipe.onMessage(insert(r));
    if (withCommit) f.pipe.onMessage(commit(0x100n));
  };

  it('a session that fails keeps what it stored of an open transaction; the next sends only the rest, so repeated failures still finish it', () => {
    // First session: the transaction is still open (no commit yet); rows 0, 1 and 3 are confirmed, then it fails.
    const first = fakes();
    stream(first, false);
    for (const i of [0, 1, 3]) first.sent[i]!.settle('confirmed');
    first.pipe.fail(new Error('replication connection lost'));
    expect(first.pipe.progress()).toEqual(
      new Map([['7/0/100', { stored: 2, lastId: rows[1]!.id, commitLsn: 0x100n }]]),
    );
    // Sent and not kept: row 3 (stored, past the gap) and rows 2, 4, 5 (unsettled).
    expect(first.pipe.toSendAgain()).toBe(4);

    // A session that fails before the server sent the transaction again passes the progress on.
    const early = fakes({ resume: first.pipe.progress() });
    early.pipe.fail(new Error('replication connection lost'));
    expect(early.pipe.progress()).toEqual(first.pipe.progress());

    // Second session: from row 2 on; rows 2 and 3 are stored before it fails too.
    const second = fakes({ resume: early.pipe.progress() });
    stream(second);
    expect(second.sent.map(second.idOf)).toEqual(rows.slice(2).map((r) => r.id));
    second.sent[0]!.settle('confirmed');
    second.sent[1]!.settle('confirmed');
    second.pipe.fail(new Error('replication connection lost'));
    expect(second.pipe.progress()).toEqual(
      new Map([['7/0/100', { stored: 4, lastId: rows[3]!.id, commitLsn: 0x100n }]]),
    );
    expect(second.pipe.toSendAgain()).toBe(2);

    // Third session: the last two rows, then the commit is acknowledged.
    const third = fakes({ resume: second.pipe.progress() });
    stream(third);
    expect(third.sent.map(third.idOf)).toEqual(rows.slice(4).map((r) => r.id));
    for (const s of third.sent) s.settle('confirmed');
    third.pipe.flushAck();
    expect(third.acks).toEqual([0x100n]);
    expect(third.failures).toEqual([]);
    // Acknowledged: nothing is left to pass on.
    expect(third.pipe.progress()).toEqual(new Map());
  });

  it('a transaction sent again that is not the one recorded fails the session before it is acknowledged, and nothing is kept', () => {
    const f = fakes({ resume: new Map([['7/0/100', { stored: 3, lastId: 'another-row', commitLsn: 0x100n }]]) });
    stream(f);
    expect(f.failures.map((e) => e.message)).toEqual([
      expect.stringMatching(/differs from the one a previous session/),
    ]);
    f.pipe.flushAck();
    expect(f.acks).toEqual([]);
    expect(f.pipe.progress()).toEqual(new Map());
  });

  it('another transaction is not skipped', () => {
    const f = fakes({ resume: new Map([['8/0/100', { stored: 3, lastId: rows[2]!.id, commitLsn: 0x100n }]]) });
    stream(f);
    expect(f.sent.map(f.idOf)).toEqual(rows.map((r) => r.id));
  });
});

describe('the window after a failure', () => {
  it('starts at one and grows by one per confirm, doubling per round trip, up to the maximum', () => {
    const f = fakes({ startWindow: 1, maxInFlight: 8 });
    txn(f, 100n, ...Array.from({ length: 20 }, () => row()));
    const rounds: number[] = [];
    for (let settled = 0; settled < 20;) {
      const open = f.sent.slice(settled);
      rounds.push(open.length);
      for (const s of open) s.settle('confirmed');
      settled += open.length;
    }
    expect(rounds).toEqual([1, 2, 4, 8, 5]);
  });
});

describe('a refusal the broker closes the channel for', () => {
  it('with more than one message in flight fails the session naming the last message sent', () => {
    const f = fakes();
    const rows = [row(), row(), row()];
    txn(f, 100n, ...rows);
    f.sent[0]!.settle('refused', CC_REFUSAL);
    expect(f.failures).toHaveLength(1);
    expect(f.failures[0]).toBeInstanceOf(BrokerRefusalError);
    expect((f.failures[0] as BrokerRefusalError).frontier).toBe(rows[2]!.id);
  });

  it.each([
    ['406 (a CC header)', CC_REFUSAL],
    [
      '403 (no write permission for the routing key)',
      {
        code: 403,
        text: "ACCESS_REFUSED - access to topic 'order.OrderPlaced' in exchange 'saga.events' in vhost '/' refused for user 'relay'",
      },
    ],
  ])(
    'sending one at a time, diverts the refused row (%s) to the invalid queue with the reply code and text, and goes on',
    (_name, refusal) => {
      const rows = [row(), row(), row(), row()];
      const f = fakes({ startWindow: 1, isolateThrough: rows[2]!.id as string });
      txn(f, 100n, ...rows);
      expect(f.sent).toHaveLength(1);
      f.sent[0]!.settle('confirmed');
      f.sent[1]!.settle('refused', refusal);
      expect(f.sent[2]).toMatchObject({ routingKey: 'saga.events.invalid', options: { messageId: rows[1]!.id } });
      expect(String(f.sent[2]!.options.headers!['x-invalid-reason'])).toBe(`the broker refused it: ${refusal.text}`);
      f.sent[2]!.settle('confirmed');
      expect(f.sent.map(f.idOf).slice(3)).toEqual([rows[2]!.id]);
      f.sent[3]!.settle('confirmed');
      // Past the refused session's last message: the window grows again.
      expect(f.sent.map(f.idOf).slice(4)).toEqual([rows[3]!.id]);
      f.sent[4]!.settle('confirmed');
      f.pipe.flushAck();
      expect(f.acks).toEqual([100n]);
      expect(f.failures).toEqual([]);
    },
  );

  it('for the whole exchange (403 without a topic) is not diverted: the session fails and nothing goes to the invalid queue', () => {
    const r = row();
    const f = fakes({ startWindow: 1, isolateThrough: r.id });
    txn(f, 100n, r);
    f.sent[0]!.settle('refused', {
      code: 403,
      text: "ACCESS_REFUSED - access to exchange 'saga.events' in vhost '/' refused for user 'relay'",
    });
    expect(f.failures).toHaveLength(1);
    expect(f.sent).toHaveLength(1);
  });

  it('of another kind (404) is not diverted: the session fails', () => {
    const r = row();
    const f = fakes({ startWindow: 1, isolateThrough: r.id });
    txn(f, 100n, r);
    f.sent[0]!.settle('refused', { code: 404, text: "NOT_FOUND - no exchange 'saga.events'" });
    expect(f.failures).toHaveLength(1);
    expect(f.sent).toHaveLength(1);
  });

  it('for its size diverts a copy cut to fit, without the whole row', () => {
    const big = row({ payload: `{"version":1,"data":"${'x'.repeat(1_000_000)}"}` });
    const f = fakes({ startWindow: 1, isolateThrough: big.id });
    txn(f, 100n, big);
    f.sent[0]!.settle('refused', {
      code: 406,
      text: 'PRECONDITION_FAILED - message size 1000030 is larger than max size 16777216',
    });
    expect(f.sent[1]!.routingKey).toBe('saga.events.invalid');
    expect(f.sent[1]!.content.length).toBeLessThan(64 * 1024);
    expect(JSON.parse(f.sent[1]!.content.toString()).row.payload.bytes).toBe(Buffer.byteLength(big.payload));
  });
});

describe('what is not a refusal', () => {
  it('a publish abandoned with the connection fails the session without counting as a broker refusal', () => {
    const f = fakes();
    txn(f, 100n, row());
    f.sent[0]!.settle('abandoned');
    expect(f.failures.map((e) => e.message)).toEqual(['broker connection lost before the confirm']);
    expect(f.refused).toEqual([]);
  });

  it('after the session closed (a stream error, or a stop past the drain deadline), later settles are ignored', () => {
    const f = fakes();
    txn(f, 100n, row());
    f.pipe.close();
    f.sent[0]!.settle('refused', NACK);
    expect(f.refused).toEqual([]);
    expect(f.failures).toEqual([]);
    f.pipe.flushAck();
    expect(f.acks).toEqual([]);
  });
});

describe('stream rules', () => {
  it('a begin inside an open transaction fails the session (it would hold every later acknowledgement back)', () => {
    const f = fakes();
    f.pipe.onMessage(begin());
    f.pipe.onMessage(insert(row()));
    f.pipe.onMessage(begin());
    expect(f.failures.map((e) => e.message)).toEqual(['begin inside an open transaction']);
  });
});
