import { settleWithin, TimeoutError } from '../../src/runtime/settle';

describe('settleWithin', () => {
  it('answers the promise when it settles in time', async () => {
    await expect(settleWithin(Promise.resolve(7), 1000, 'seven')).resolves.toBe(7);
    await expect(settleWithin(Promise.reject(new Error('no')), 1000, 'no')).rejects.toThrow('no');
  });
  it('rejects with a TimeoutError naming what did not settle', async () => {
    const never = new Promise<void>(() => undefined);
    const err = await settleWithin(never, 10, 'the close').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toBe('the close did not settle within 10 ms');
  });
});
