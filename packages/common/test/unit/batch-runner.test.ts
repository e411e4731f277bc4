/** The batch runner with a fake channel and a fake handler: what is applied, parked, held and acknowledged. */
import { randomUUID } from 'node:crypto';
import type { ConsumeMessage, Options } from 'amqplib';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Incoming, Outcome } from '../../src/messaging/batch-handler';
import { createBatchRunner, type ConsumerChannel } from '../../src/messaging/batch-runner';
import { createConsumerMetrics } from '../../src/messaging/consumer-metrics';
import { encodeOutboxRow } from '../../src/messaging/envelope-codec';
import { TimeoutError } from '../../src/runtime/settle';
import { publisherTrust } from '../../src/messaging/publisher-trust';

let tag = 0;
function message(customerId = 'c1'): ConsumeMessage {
  const orderId = randomUUID();
  const m = encodeOutboxRow(
    {
      id: randomUUID(),
      aggregatetype: 'order',
      aggregateid: orderId,
      type: 'OrderConfirmed',
      payload: { version: 1, data: { orderId, customerId, totalCents: 100 } },
      headers: { correlationId: orderId },
    },
    'order',
    'outbox',
  );
  if (!m.ok) throw new Error(m.reason);
  return {
    content: m.content,
    fields: { deliveryTag: ++tag, redelivered: false, exchange: 'saga.events', routingKey: m.routingKey },
    properties: { ...m.options, headers: m.options.headers ?? {} },
  } as unknown as ConsumeMessage;
}

type Sent = { queue: string; options: Options.Publish; confirm: (err?: Error) => void };

function fixture(apply: (messages: Incoming[]) => Promise<Outcome[]>, opts: { autoConfirm?: boolean } = {}) {
  const sent: Sent[] = [];
  const acks: { tag: number; multiple: boolean }[] = [];
  const holds: number[] = [];
  let released = 0;
  const channel: ConsumerChannel = {
    sendToQueue(queue: string, _content: Buffer, options: Options.Publish, cb?: (err: unknown) => void) {
      const confirm = (err?: Error) => cb?.(err ?? null);
      sent.push({ queue, options, confirm });
      if (opts.autoConfirm !== false) confirm();
      return true;
    },
    publish: () => true,
    ack(msg: ConsumeMessage, multiple?: boolean) {
      acks.push({ tag: msg.fields.deliveryTag, multiple: multiple ?? false });
    },
  } as unknown as ConsumerChannel;
  const runner = createBatchRunner({
    queue: 'inventory.events',
    exchange: 'saga.events',
    handler: { types: ['OrderConfirmed'], apply },
    log: pino({ level: 'silent' }),
    metrics: createConsumerMetrics(new Registry()),
    policy: { maxAttempts: 5, retryBaseMs: 100 },
    confirmTimeoutMs: 200,
    hold: async (_channel, _err, tries) => {
      holds.push(tries);
    },
    released: () => released++,
    trust: publisherTrust({ url: 'amqp://guest:guest@127.0.0.1:5672', exchange: 'saga.events' }),
  });
  return { runner, channel, sent, acks, holds, released: () => released };
}

const unreachable = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const checkViolation = () => Object.assign(new Error('check'), { code: '23514' });

describe('batch runner', () => {
  it('applies a batch in one call and acknowledges it with one multiple ack', async () => {
    const calls: number[] = [];
    const f = fixture(async (ms) => {
      calls.push(ms.length);
      return ms.map(() => 'applied');
    });
    const batch = [message(), message(), message()];
    await f.runner.run(f.channel, batch);
    expect(calls).toEqual([3]);
    expect(f.acks).toEqual([{ tag: batch[2]!.fields.deliveryTag, multiple: true }]);
    expect(f.sent).toEqual([]);
  });

  it('holds a batch while the database is unreachable, then applies it without parking anything', async () => {
    let fails = 2;
    const f = fixture(async (ms) => {
      if (fails-- > 0) throw unreachable();
      return ms.map(() => 'applied');
    });
    await f.runner.run(f.channel, [message(), message()]);
    expect(f.holds).toEqual([0, 1]);
    expect(f.released()).toBe(1);
    expect(f.sent).toEqual([]);
    expect(f.acks).toHaveLength(1);
  });

  it('a message parked earlier in a batch is not parked again when a later one meets an outage', async () => {
    const bad = message('poison');
    let outage = true;
    const f = fixture(async (ms) => {
      if (ms.length > 1) throw checkViolation(); // the batch fails: one by one
      if (ms[0]!.type === 'OrderConfirmed' && ms[0]!.data.customerId === 'poison') throw checkViolation();
      if (outage) {
        outage = false;
        throw unreachable();
      }
      return ['applied'];
    });
    const good = message();
    await f.runner.run(f.channel, [bad, good]);
    expect(f.sent.map((s) => s.queue)).toEqual(['inventory.events.dlq']);
    expect(f.holds).toEqual([0]);
    // The parked message is acknowledged as soon as its copy is confirmed, before the outage.
    expect(f.acks).toEqual([
      { tag: bad.fields.deliveryTag, multiple: false },
      { tag: good.fields.deliveryTag, multiple: true },
    ]);
  });

  it('gives a batch up when the broker never confirms its retry copy', async () => {
    const f = fixture(
      async () => {
        throw new Error('transient');
      },
      { autoConfirm: false },
    );
    await expect(f.runner.run(f.channel, [message()])).rejects.toBeInstanceOf(TimeoutError);
    expect(f.sent.map((s) => s.queue)).toEqual(['inventory.events.backoff']);
    expect(f.acks).toEqual([]);
  });
});
