/** A promise that did not settle in time. */
export class TimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} did not settle within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * `promise`, or a TimeoutError once `ms` have passed, whichever comes first; the timer goes either way. The promise
 * itself is not cancelled: a caller that gives up on it should make sure its late outcome does no harm.
 */
export async function settleWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A wait given up because the component is stopping. */
export class StoppingError extends Error {
  override name = 'StoppingError';
  constructor(what: string) {
    super(`${what} given up: stopping`);
  }
}

/**
 * `promise`, or a StoppingError as soon as `signal` aborts (at once if it already has). For work that cannot be
 * cancelled (amqplib's connect, a pg statement): `onLate` gets what it yields after the stop, to close it.
 */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  what: string,
  onLate?: (value: T) => void,
): Promise<T> {
  const late = (v: T) => onLate?.(v);
  if (signal.aborted) {
    promise.then(late, () => undefined);
    return Promise.reject(new StoppingError(what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(new StoppingError(what));
      promise.then(late, () => undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
