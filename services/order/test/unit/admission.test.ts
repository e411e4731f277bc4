import { HttpProblemError } from '@saga/common/http/http-error';
import { createAdmission, type ShedReason } from '../../src/http/admission';
import type { Backlog } from '../../src/db/order-repository';

/**
 * A backlog the test answers by hand, and a clock it moves (the database's too). `head`: when the order the admission
 * looks at was placed (ms on that clock).
 */
function setup(maxPending = 10, maxWaitMs = 0) {
  let t = 0;
  const reads: ((b: Backlog) => void)[] = [];
  const shed: ShedReason[] = [];
  const admission = createAdmission(() => new Promise<Backlog>((resolve) => reads.push(resolve)), {
    maxPending,
    maxWaitMs,
    refreshMs: 200,
    now: () => t,
    onShed: (reason) => shed.push(reason),
  });
  const answer = async (n: number, head?: number, id = 'a') => {
    reads.shift()!({
      pending: n,
      atUs: t * 1000,
      ...(head === undefined ? {} : { head: { placedUs: head * 1000, id } }),
    });
    await Promise.resolve();
  };
  return { admission, answer, reads, advance: (ms: number) => (t += ms), shed: () => shed.length, reasons: shed };
}

const refusal = (fn: () => void): HttpProblemError | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err as HttpProblemError;
  }
};

describe('admission of new orders by the saga backlog', () => {
  it('admits while the count is under its bound, without waiting for the count', () => {
    const { admission, reads } = setup();
    expect(refusal(() => admission.check())).toBeUndefined();
    expect(reads).toHaveLength(1);
  });

  it('refuses with 503 and Retry-After once the backlog reaches its bound', async () => {
    const { admission, answer, shed } = setup(10);
    admission.check();
    await answer(9);
    const err = refusal(() => admission.check());
    expect(err?.status).toBe(503);
    expect(err?.opts.headers?.['Retry-After']).toBe('1');
    expect(shed()).toBe(1);
  });

  it('reads the count at most once per interval, one read at a time', async () => {
    const { admission, answer, reads, advance } = setup();
    admission.check();
    admission.check();
    expect(reads).toHaveLength(1);
    await answer(3);
    advance(199);
    admission.check();
    expect(reads).toHaveLength(0);
    advance(1);
    admission.check();
    expect(reads).toHaveLength(1);
  });

  it('counts the orders it admitted since the count was read', async () => {
    const { admission, answer } = setup(10);
    admission.check(); // admitted while the read runs: the count may not hold it
    await answer(7);
    expect(admission.pending()).toBe(8);
    admission.check();
    admission.check();
    expect(admission.pending()).toBe(10);
    expect(refusal(() => admission.check())?.status).toBe(503);
  });

  it('does not trust a count from before a quiet spell, and reads a fresh one', async () => {
    const { admission, answer, reads, advance } = setup(10);
    admission.check();
    await answer(50);
    advance(10_000);
    expect(refusal(() => admission.check())).toBeUndefined();
    expect(reads).toHaveLength(1);
    await answer(50);
    expect(refusal(() => admission.check())?.status).toBe(503);
  });

  it('admits again when the backlog has drained', async () => {
    const { admission, answer, advance } = setup(10);
    admission.check();
    await answer(50);
    advance(200);
    expect(refusal(() => admission.check())?.status).toBe(503);
    await answer(2);
    expect(refusal(() => admission.check())).toBeUndefined();
  });

  it('keeps the last count when a read fails', async () => {
    let fail = false;
    let t = 0;
    const admission = createAdmission(
      () => (fail ? Promise.reject(new Error('down')) : Promise.resolve({ pending: 20, atUs: t * 1000 })),
      {
        maxPending: 10,
        refreshMs: 200,
        now: () => t,
      },
    );
    admission.check();
    await new Promise((r) => setImmediate(r));
    fail = true;
    t += 200;
    expect(refusal(() => admission.check())?.status).toBe(503);
    await new Promise((r) => setImmediate(r));
    expect(admission.pending()).toBe(21); // 20 read, plus the order admitted while it was read
  });
});

describe('admission of new orders by the wait the saga would give them', () => {
  /**
   * Reads 200 ms apart from t = 10 s, the head placed at each of `heads` (ms on the clock) in turn. The first read
   * measures nothing yet: the wait counts from a second after it.
   */
  async function reads(heads: number[], o: { pending?: number; maxWaitMs?: number; ids?: string[] } = {}) {
    const s = setup(600, o.maxWaitMs ?? 1000);
    s.advance(10_000);
    for (let i = 0; i < heads.length; i++) {
      if (i > 0) s.advance(200);
      refusal(() => s.admission.check()); // starts the read (it may refuse meanwhile)
      await s.answer(o.pending ?? 50, heads[i]!, o.ids?.[i] ?? 'a');
    }
    return s;
  }
  /** `n` heads from `from`, `step` ms of placement time apart. */
  const steps = (from: number, step: number, n = 7) => Array.from({ length: n }, (_, i) => from + i * step);

  it('refuses with 503 while the head keeps pace with the clock and was placed longer ago than the bound', async () => {
    const { admission, reasons } = await reads(steps(8_000, 200)); // 11.2 s: the head was placed at 9.2 s
    expect(admission.waitMs()).toBe(2000);
    const err = refusal(() => admission.check());
    expect(err?.status).toBe(503);
    expect(err?.opts.headers?.['Retry-After']).toBe('1');
    expect(reasons.at(-1)).toBe('wait');
  });

  it('admits while the head is younger than the bound', async () => {
    const { admission } = await reads(steps(9_500, 200)); // placed 0.5 s before the last read
    expect(admission.waitMs()).toBe(500);
    expect(refusal(() => admission.check())).toBeUndefined();
  });

  it('takes orders while a backlog drains (the head gets through placement time faster than the clock), however old its head', async () => {
    const { admission } = await reads(steps(2_000, 300)); // 1.5 times the clock, 7.4 s old
    expect(admission.waitMs()).toBe(0);
    expect(refusal(() => admission.check())).toBeUndefined();
  });

  it('refuses while the head gets through placement time only a little faster than the clock', async () => {
    const { admission } = await reads(steps(2_000, 240)); // 1.2 times the clock, 7.76 s old
    expect(admission.waitMs()).toBe(7760);
    expect(refusal(() => admission.check())?.status).toBe(503);
  });

  it('keeps taking orders up to the count while the head does not move at all (a service is down)', async () => {
    // 597 read at the last read, plus the order admitted while it was read
    const { admission, reasons } = await reads(steps(2_000, 0), { pending: 597 });
    expect(admission.waitMs()).toBe(0);
    expect(refusal(() => admission.check())).toBeUndefined();
    expect(refusal(() => admission.check())).toBeUndefined();
    expect(refusal(() => admission.check())?.status).toBe(503);
    expect(reasons).toEqual(['backlog']);
  });

  it('after the head stood still, counts the wait only once the saga has moved for a second', async () => {
    // Still for a second (a service was down), then back: the head moves slowly at first.
    const s = await reads([...steps(4_000, 0, 6), 4_050, 4_100, 4_150, 4_300]);
    // Without the second of grace its 7.5 s age would refuse at once.
    expect(s.admission.waitMs()).toBe(0);
    expect(refusal(() => s.admission.check())).toBeUndefined();
    s.advance(200);
    refusal(() => s.admission.check());
    await s.answer(50, 4_500); // a full second of movement, only 0.5 s of placement time got through in it
    expect(s.admission.waitMs()).toBe(7500);
    expect(refusal(() => s.admission.check())?.status).toBe(503);
  });

  it('takes a pause of the head shorter than half a second for a slow saga, not for a stopped one', async () => {
    const { admission } = await reads([...steps(8_000, 200, 6), 9_000, 9_000]); // still for the last 400 ms
    expect(admission.waitMs()).toBe(2400); // 0.6 s of placement time in the last second, placed 2.4 s ago
    expect(refusal(() => admission.check())?.status).toBe(503);
  });

  it('does not take a move within one group commit, whose orders share their placed time, for a stopped saga', async () => {
    const ids = ['00', '11', '22', '33', '44', '55', '66'];
    const { admission } = await reads(steps(5_000, 0), { ids });
    expect(refusal(() => admission.check())).toBeUndefined();
  });

  it('measures the speed over the last second, not over the last read', async () => {
    // 100 ms of placement time per 200 ms read, then a jump: 0.9 s of placement time in the last second, 2.2 s old.
    // The last 200 ms alone would say the saga catches up.
    const { admission } = await reads([...steps(8_000, 100, 6), 9_000]);
    expect(admission.waitMs()).toBe(2200);
    expect(refusal(() => admission.check())?.status).toBe(503);
  });

  it('does not judge the wait before a second of reads, nor from reads before a quiet spell', async () => {
    const early = await reads(steps(5_000, 200, 5)); // 0.8 s of reads, the head 1.2 s old
    expect(early.admission.waitMs()).toBe(0);
    const s = await reads(steps(5_000, 200));
    expect(refusal(() => s.admission.check())?.status).toBe(503);
    s.advance(10_000);
    expect(s.admission.waitMs()).toBe(0);
    expect(refusal(() => s.admission.check())).toBeUndefined();
    await s.answer(50, 6_300); // the first read after the spell: nothing of before it counts
    expect(s.admission.waitMs()).toBe(0);
    expect(refusal(() => s.admission.check())).toBeUndefined();
  });

  it('applies no wait with a bound of 0', async () => {
    const { admission } = await reads(steps(5_000, 200), { maxWaitMs: 0 });
    expect(admission.waitMs()).toBeGreaterThan(1000);
    expect(refusal(() => admission.check())).toBeUndefined();
  });
});
