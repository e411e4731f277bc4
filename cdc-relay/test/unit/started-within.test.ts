/** The wait for a replication stream to start: whichever way it ends, it leaves no timer and no abort listener. */
import { getEventListeners } from 'node:events';
import { startedWithin } from '../../src/session';

const never = new Promise<never>(() => undefined);

describe('waiting for the stream to start', () => {
  afterEach(() => jest.useRealTimers());

  it('leaves no abort listener and no timer behind, however many times a standby polls', async () => {
    jest.useFakeTimers();
    const abort = new AbortController();
    for (let i = 0; i < 60; i++) {
      const refused = Object.assign(new Error('slot in use'), { code: '55006' });
      const outcome = await startedWithin({ started: never, ended: Promise.reject(refused) }, 60_000, abort.signal);
      expect(outcome).toBe(refused);
    }
    expect(getEventListeners(abort.signal, 'abort')).toHaveLength(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('answers true when the stream started, a timeout error when it did not in time, and stops waiting on abort', async () => {
    jest.useFakeTimers();
    const abort = new AbortController();
    expect(await startedWithin({ started: Promise.resolve(), ended: never }, 1000, abort.signal)).toBe(true);
    const late = startedWithin({ started: never, ended: never }, 1000, abort.signal);
    jest.advanceTimersByTime(1000);
    expect(String(await late)).toMatch(/did not start in time/);
    const stopped = startedWithin({ started: never, ended: never }, 1000, abort.signal);
    abort.abort();
    expect(String(await stopped)).toMatch(/stopped/);
    expect(jest.getTimerCount()).toBe(0);
  });
});
