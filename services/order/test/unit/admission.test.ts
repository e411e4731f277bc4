import { HttpProblemError } from '@saga/common/http/http-error';
import { createAdmission, TRUST_MAX_MS } from '../../src/http/admission';

type Read = { resolve: (n: number) => void; reject: (err: Error) => void };

/** The oldest read under way fails. */
async function failRead(reads: Read[]) {
  reads.shift()!.reject(new Error('the database is down'));
  await new Promise((r) => setImmediate(r));
}

/** A backlog count the test answers by hand, and a clock it moves. */
function setup(maxPending = 10) {
  let t = 0;
  const reads: Read[] = [];
  let shed = 0;
  const admission = createAdmission(() => new Promise<number>((resolve, reject) => reads.push({ resolve, reject })), {
    maxPending,
    refreshMs: 200,
    now: () => t,
    onShed: () => shed++,
  });
  const answer = async (n: number) => {
    reads.shift()!.resolve(n);
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

  it('counts the orders it admitted that are not written yet, however long they wait for their write', async () => {
    const { admission, answer, advance } = setup(10);
    admission.check(); // admitted before the first read answered, and still waiting for its write
    await answer(5);
    advance(200);
    admission.check(); // a second read starts; the first order is still not written
    await answer(5); // the database holds neither of them
    expect(admission.pending()).toBe(7);
    admission.written();
    admission.written();
    advance(200);
    admission.check();
    await answer(7); // both written now, and in the count; the third is not
    expect(admission.pending()).toBe(8);
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

  it('keeps refusing while a count is slow to come under load', async () => {
    const { admission, answer, reads, advance } = setup(10);
    admission.check();
    await answer(50);
    advance(200);
    expect(refusal(() => admission.check())?.status).toBe(503); // starts the next read, right after the last
    expect(reads).toHaveLength(1);
    advance(3_000); // the database is busy: that read takes seconds
    expect(refusal(() => admission.check())?.status).toBe(503);
    expect(admission.busy()).toBe(true);
    await answer(3);
    expect(refusal(() => admission.check())).toBeUndefined();
  });

  it('admits again when the reads after a count hang or fail for longer than it is trusted', async () => {
    const { admission, answer, reads, advance } = setup(10);
    admission.check();
    await answer(50);
    advance(200);
    expect(refusal(() => admission.check())?.status).toBe(503); // a read starts, and hangs
    advance(TRUST_MAX_MS);
    expect(refusal(() => admission.check())).toBeUndefined();
    expect(reads).toHaveLength(1); // still the one read: no second one while it hangs
  });

  it('does not revive a count from before a quiet spell while the next read is under way, or when it fails', async () => {
    const { admission, answer, reads, advance } = setup(10);
    admission.check();
    await answer(50);
    advance(600_000); // a quiet spell
    expect(refusal(() => admission.check())).toBeUndefined(); // starts a read
    expect(refusal(() => admission.check())).toBeUndefined(); // while it runs, the old count does not count
    expect(admission.busy()).toBe(false);
    expect(reads).toHaveLength(1);
    await failRead(reads);
    expect(refusal(() => admission.check())).toBeUndefined(); // nor once it failed
  });

  it('counts an order whose write ended while the count was read', async () => {
    const { admission, answer, advance } = setup(10);
    admission.check();
    await answer(5);
    advance(200);
    admission.check(); // a read starts
    admission.written(); // both writes commit after its snapshot, before it answers
    admission.written();
    await answer(5);
    expect(admission.pending()).toBe(7);
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
