/** The consumer's batching pump with a fake port and a fake clock: no broker, no database. */
import { createPump, type PumpPort } from '../../src/messaging/consumer-pump';
import { waitUntil } from '../../../../test/support/wait';

type Ch = { name: string };

function fixture(opts: { maxBatch: number; batchIntervalMs: number; fail?: (batch: string[]) => boolean }) {
  const batches: { channel: string; batch: string[] }[] = [];
  const abandoned: string[] = [];
  let release: (() => void) | undefined;
  let holding = false;
  const port: PumpPort<Ch, string> = {
    async runBatch(channel, batch) {
      batches.push({ channel: channel.name, batch });
      if (holding) await new Promise<void>((r) => (release = r));
      if (opts.fail?.(batch)) throw new Error('not settled');
    },
    abandon: (channel) => abandoned.push(channel.name),
  };
  let clock = 0;
  const pump = createPump(port, { ...opts, now: () => clock });
  return {
    pump,
    batches,
    abandoned,
    hold: () => (holding = true),
    release: () => {
      holding = false;
      release?.();
    },
    tick: (ms: number) => (clock += ms),
  };
}

const a: Ch = { name: 'a' };
const b: Ch = { name: 'b' };

describe('consumer batching pump', () => {
  it('applies a lone delivery at once', async () => {
    const f = fixture({ maxBatch: 5, batchIntervalMs: 0 });
    f.pump.push(a, 'm1');
    await waitUntil(() => f.batches.length === 1);
    expect(f.batches).toEqual([{ channel: 'a', batch: ['m1'] }]);
  });

  it('gathers what arrives while a batch runs into the next one, at most maxBatch', async () => {
    const f = fixture({ maxBatch: 3, batchIntervalMs: 0 });
    f.hold();
    f.pump.push(a, 'm1');
    await waitUntil(() => f.batches.length === 1);
    for (const m of ['m2', 'm3', 'm4', 'm5']) f.pump.push(a, m);
    f.release();
    await f.pump.drain();
    expect(f.batches.map((x) => x.batch)).toEqual([['m1'], ['m2', 'm3', 'm4'], ['m5']]);
  });

  it('never mixes channels in one batch', async () => {
    const f = fixture({ maxBatch: 10, batchIntervalMs: 0 });
    f.pump.push(a, 'm1');
    f.pump.push(a, 'm2');
    f.pump.push(b, 'm3');
    await f.pump.drain();
    expect(f.batches).toEqual([
      { channel: 'a', batch: ['m1', 'm2'] },
      { channel: 'b', batch: ['m3'] },
    ]);
  });

  it('paces batches that are not full and starts a full one at once', async () => {
    const f = fixture({ maxBatch: 3, batchIntervalMs: 600_000 });
    f.pump.push(a, 'm1');
    await waitUntil(() => f.batches.length === 1);
    f.pump.push(a, 'm2');
    await new Promise((r) => setImmediate(r));
    expect(f.batches).toHaveLength(1); // gathered: the interval has not passed
    f.pump.push(a, 'm3');
    f.pump.push(a, 'm4');
    await waitUntil(() => f.batches.length === 2);
    expect(f.batches[1]!.batch).toEqual(['m2', 'm3', 'm4']);
    f.pump.push(a, 'm5');
    await f.pump.drain(); // stopping applies what is gathered
    expect(f.batches.map((x) => x.batch)).toEqual([['m1'], ['m2', 'm3', 'm4'], ['m5']]);
  });

  it('gives a channel up when its batch is not settled, ignoring its later deliveries', async () => {
    const f = fixture({ maxBatch: 2, batchIntervalMs: 0, fail: (batch) => batch.includes('m1') });
    f.hold();
    f.pump.push(a, 'm1');
    await waitUntil(() => f.batches.length === 1);
    f.pump.push(a, 'm2');
    f.pump.push(b, 'm3');
    f.release();
    await f.pump.drain();
    f.pump.push(a, 'm4');
    await f.pump.drain();
    expect(f.abandoned).toEqual(['a']);
    expect(f.batches.map((x) => x.batch)).toEqual([['m1'], ['m3']]);
  });

  it('drops the buffered deliveries of a closed channel', async () => {
    const f = fixture({ maxBatch: 5, batchIntervalMs: 0 });
    f.hold();
    f.pump.push(a, 'm1');
    await waitUntil(() => f.batches.length === 1);
    f.pump.push(a, 'm2');
    f.pump.drop(a);
    f.release();
    await f.pump.drain();
    expect(f.batches.map((x) => x.batch)).toEqual([['m1']]);
  });
});
