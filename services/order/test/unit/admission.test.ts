import { HttpProblemError } from '@saga/common/http/http-error';
import { createAdmission } from '../../src/http/admission';

/** A backlog count the test answers by hand, and a clock it moves. */
function setup(maxPending = 10) {
  let t = 0;
  const reads: ((n: number) => void)[] = [];
  let shed = 0;
  const admission = createAdmission(() => new Promise<number>((resolve) => reads.push(resolve)), {
    maxPending,
    refreshMs: 200,
    now: () => t,
    onShed: () => shed++,
  });
  const answer = async (n: number) => {
    reads.shift()!(n);
    await Promise.resolve();
  };
  return { admission, answer, reads, advance: (ms: number) => (t += ms), shed: () => shed };
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

  it('counts the stack as behind from a quarter of the bound, by a recent count only', async () => {
    const { admission, answer, advance } = setup(100);
    expect(admission.busy()).toBe(false); // nothing read yet
    admission.check();
    await answer(23); // 24 with the order admitted during the read
    expect(admission.busy()).toBe(false);
    admission.check();
    expect(admission.busy()).toBe(true);
    advance(401);
    expect(admission.busy()).toBe(false); // the count is from before a quiet spell
  });

  it('keeps the last count when a read fails', async () => {
    let fail = false;
    let t = 0;
    const admission = createAdmission(() => (fail ? Promise.reject(new Error('down')) : Promise.resolve(20)), {
      maxPending: 10,
      refreshMs: 200,
      now: () => t,
    });
    admission.check();
    await new Promise((r) => setImmediate(r));
    fail = true;
    t += 200;
    expect(refusal(() => admission.check())?.status).toBe(503);
    await new Promise((r) => setImmediate(r));
    expect(admission.pending()).toBe(21); // 20 read, plus the order admitted while it was read
  });
});
