import type { Logger } from './logger';

/** Capped exponential backoff with full jitter: attempt 0 -> up to base, doubling to cap. */
export function backoffDelay(attempt: number, baseMs = 200, capMs = 10_000, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.max(baseMs / 2, Math.floor(random() * ceiling));
}

/**
 * Wait `ms`, or until `signal` aborts. The abort listener goes when the wait ends either way: a process-long signal
 * (a standby relay polls every second) must not collect one listener per wait.
 */
export const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Sleeps that can be cut short, as pacing needs them: `sleep(ms)` waits `ms`, or until `wake()` ends every sleep in
 * progress (a batch waiting for its turn starts at once when a full one is ready).
 */
export function wakeableSleeps() {
  const sleepers = new Set<() => void>();
  return {
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          sleepers.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        sleepers.add(done);
      }),
    wake: () => {
      for (const done of [...sleepers]) done();
    },
  };
}

/**
 * Run `stop` once on SIGTERM or SIGINT, then exit 0 (1 when stopping failed or took longer than `timeoutMs`).
 * A second signal exits at once.
 */
export function onShutdown(log: Logger, timeoutMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'shutdown timed out');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    stop().then(
      () => {
        log.info('stopped cleanly');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** Log and exit on a start-up failure (bad config, unreachable dependency that must exist). */
export function exitOnStartupError(log: Logger, err: unknown): never {
  log.fatal({ err }, 'failed to start');
  process.exit(1);
}

/** The same curve without jitter, for retry queues (attempt 1 waits base, then 2×base, 4×base … up to cap). */
export function retryDelay(attempt: number, baseMs: number, capMs = 30_000): number {
  return backoffDelay(Math.max(0, attempt - 1), baseMs, capMs, () => 1);
}

export type ReconnectOptions = {
  /** What is reconnecting, for the log. */
  what: string;
  log: Logger;
  /** Stops the loop; `session` should end when it aborts. */
  signal: AbortSignal;
  baseMs?: number;
  capMs?: number;
  /** A session that lasted this long counts as healthy: the next failure starts the backoff again. */
  healthyAfterMs?: number;
};

/**
 * The one reconnect loop: run `session` (connect, work, resolve or throw when the connection ends) again and again
 * from a clean state, waiting a capped exponential backoff with jitter between tries, until `signal` aborts.
 */
export async function reconnectLoop(session: () => Promise<void>, opts: ReconnectOptions): Promise<void> {
  const { log, signal, what } = opts;
  let attempt = 0;
  while (!signal.aborted) {
    const started = Date.now();
    try {
      await session();
    } catch (err) {
      if (!signal.aborted) log.warn({ err, what }, `${what} session failed`);
    }
    if (signal.aborted) break;
    if (Date.now() - started > (opts.healthyAfterMs ?? 30_000)) attempt = 0;
    const wait = backoffDelay(attempt++, opts.baseMs ?? 200, opts.capMs ?? 10_000);
    log.info({ retryInMs: wait, what }, `reconnecting ${what}`);
    await delay(wait, signal);
  }
}

/**
 * Run `task` every `everyMs`, one run at a time (a slow run is never overtaken by the next tick), without keeping
 * the process alive. `stop` waits for the run in progress. The task handles its own errors.
 */
export function startPeriodic(everyMs: number, task: () => Promise<void>): { stop: () => Promise<void> } {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= task().finally(() => (running = undefined));
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
