import { createGroupCommit, QueueFullError } from '../../src/db/group-commit';

describe('group commit', () => {
  it('writes what arrives while a write is in flight in one group, in arrival order', async () => {
    const groups: number[][] = [];
    const submit = createGroupCommit(async (items: number[]) => {
      groups.push(items);
      await new Promise((r) => setImmediate(r));
      return items.map((i) => i * 10);
    });
    const results = await Promise.all([1, 2, 3, 4].map(submit));
    expect(results).toEqual([10, 20, 30, 40]);
    expect(groups).toEqual([[1], [2, 3, 4]]);
  });

  it('writes the items of a failed group one by one: only the bad item fails', async () => {
    const writes: number[][] = [];
    const submit = createGroupCommit(async (items: number[]) => {
      writes.push(items);
      await new Promise((r) => setImmediate(r));
      if (items.includes(3)) throw new Error('unique violation');
      return items;
    });
    const settled = await Promise.allSettled([1, 2, 3, 4].map(submit));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(writes).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
  });

  it('never puts more than maxBatch items in one write', async () => {
    const sizes: number[] = [];
    const submit = createGroupCommit(async (items: number[]) => {
      sizes.push(items.length);
      await new Promise((r) => setImmediate(r));
      return items;
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map(submit));
    expect(sizes).toEqual([1, 2, 2]);
  });

  it('runs up to maxInFlight writes at once: a caller arriving during a write starts its own at once, later ones group', async () => {
    const started: number[][] = [];
    let active = 0;
    let most = 0;
    const gates: (() => void)[] = [];
    const submit = createGroupCommit(
      async (items: number[]) => {
        started.push(items);
        most = Math.max(most, ++active);
        await new Promise<void>((r) => gates.push(r));
        active--;
        return items;
      },
      64,
      2,
    );
    const first = submit(1);
    const second = submit(2); // a write is in flight: a second one starts with this item alone
    const rest = [3, 4, 5].map(submit); // both in flight: these wait and go together
    expect(started).toEqual([[1], [2]]);
    gates.shift()!();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([[1], [2], [3, 4, 5]]);
    while (gates.length > 0) gates.shift()!();
    await new Promise((r) => setImmediate(r));
    while (gates.length > 0) gates.shift()!();
    expect(await Promise.all([second, ...rest])).toEqual([2, 3, 4, 5]);
    expect(most).toBe(2);
  });
});

describe('group commit with pacing', () => {
  afterEach(() => jest.useRealTimers());

  /** A paced group commit on jest's clock whose writes answer at once, recording each group written. */
  function pacedRecorder(maxBatch: number, maxInFlight: number, intervalMs: number | (() => number)) {
    jest.useFakeTimers();
    const groups: number[][] = [];
    const submit = createGroupCommit(
      async (items: number[]) => {
        groups.push(items);
        return items;
      },
      maxBatch,
      maxInFlight,
      { intervalMs, now: () => Date.now() },
    );
    return { groups, submit };
  }

  it('writes the first item after a quiet spell at once, and gathers what follows within the interval into one write', async () => {
    const { groups, submit } = pacedRecorder(64, 2, 20);
    const first = submit(1);
    await jest.advanceTimersByTimeAsync(0);
    expect(groups).toEqual([[1]]);
    const during = [2, 3].map(submit);
    await jest.advanceTimersByTimeAsync(5);
    const later = submit(4);
    await jest.advanceTimersByTimeAsync(5);
    expect(groups).toEqual([[1]]); // 10 ms after the first write started: the rest waits for its turn
    await jest.advanceTimersByTimeAsync(10);
    expect(groups).toEqual([[1], [2, 3, 4]]);
    expect(await Promise.all([first, ...during, later])).toEqual([1, 2, 3, 4]);
    // A quiet spell longer than the interval: the next item goes at once again.
    await jest.advanceTimersByTimeAsync(50);
    const after = submit(5);
    await jest.advanceTimersByTimeAsync(0);
    expect(groups).toEqual([[1], [2, 3, 4], [5]]);
    expect(await after).toBe(5);
  });

  it('wakes a write waiting for its turn as soon as a full group is queued', async () => {
    jest.useFakeTimers();
    const groups: number[][] = [];
    const gates: (() => void)[] = [];
    const submit = createGroupCommit(
      async (items: number[]) => {
        groups.push(items);
        await new Promise<void>((r) => gates.push(r));
        return items;
      },
      3,
      2,
      { intervalMs: 1000, now: () => Date.now() },
    );
    const first = submit(1); // written at once, held open
    await jest.advanceTimersByTimeAsync(0);
    const second = submit(2); // a second write, waiting for its turn
    await jest.advanceTimersByTimeAsync(10);
    expect(groups).toEqual([[1]]);
    const rest = [3, 4].map(submit); // now three wait: a full group
    await jest.advanceTimersByTimeAsync(0);
    expect(groups).toEqual([[1], [2, 3, 4]]);
    while (gates.length > 0) gates.shift()!();
    expect(await Promise.all([first, second, ...rest])).toEqual([1, 2, 3, 4]);
  });

  it('asks a pacing function before each write, so writes go at once while it answers 0', async () => {
    let interval = 0;
    const { groups, submit } = pacedRecorder(64, 1, () => interval);
    await submit(1);
    await submit(2);
    expect(groups).toEqual([[1], [2]]); // unpaced: each write starts as soon as the one before ends
    interval = 20;
    const paced = submit(3);
    await jest.advanceTimersByTimeAsync(19);
    expect(groups).toHaveLength(2); // paced from the start of the write before it
    await jest.advanceTimersByTimeAsync(1);
    expect(groups).toEqual([[1], [2], [3]]);
    expect(await paced).toBe(3);
    interval = 0;
    await submit(4); // right after the last write started: unpaced again, it goes at once
    expect(groups).toEqual([[1], [2], [3], [4]]);
  });

  it('starts a full group without waiting for the interval', async () => {
    const { groups, submit } = pacedRecorder(2, 1, 1000);
    const all = [1, 2, 3, 4, 5].map(submit);
    await jest.advanceTimersByTimeAsync(0);
    // Full groups go one after the other; the last, not full, waits for its turn.
    expect(groups).toEqual([
      [1, 2],
      [3, 4],
    ]);
    await jest.advanceTimersByTimeAsync(999);
    expect(groups).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(1);
    expect(groups).toEqual([[1, 2], [3, 4], [5]]);
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('group commit under pressure', () => {
  it('refuses an item when maxQueued wait already, and writes every item it accepted', async () => {
    const written: number[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const submit = createGroupCommit(
      async (items: number[]) => {
        await gate;
        written.push(...items);
        return items;
      },
      64,
      1,
      { maxQueued: 2 },
    );
    const accepted = [1, 2, 3].map(submit); // 1 is being written, 2 and 3 wait
    await expect(submit(4)).rejects.toBeInstanceOf(QueueFullError);
    open();
    expect(await Promise.all(accepted)).toEqual([1, 2, 3]);
    expect(written).toEqual([1, 2, 3]);
  });

  it('fails the whole group, without writing items one by one, when isolate says the error is not theirs', async () => {
    const writes: number[][] = [];
    const submit = createGroupCommit(
      async (items: number[]) => {
        writes.push(items);
        await new Promise((r) => setImmediate(r));
        if (items.length > 1) throw new Error('connection lost');
        return items;
      },
      64,
      1,
      { isolate: () => false },
    );
    const settled = await Promise.allSettled([1, 2, 3].map(submit));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect(writes).toEqual([[1], [2, 3]]);
  });
});
