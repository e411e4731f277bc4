import pino, { type Logger } from 'pino';
import { sonicBoomBuffered } from './library-internals';

export type { Logger };

/**
 * The one root logger of a process: JSON lines on stdout, written asynchronously. With `flushMs` > 0 (LOG_FLUSH_MS)
 * lines are collected until 4 KiB or `flushMs` have passed and written together: under load a service logs a line
 * per message, and a write system call per line cost 7-8% of a busy service's CPU on a 2-core virtual machine. Pino
 * flushes what is left synchronously when the process exits (a SIGKILL loses at most `flushMs` of lines).
 * Children carry the correlation id (the order id), e.g. `log.child({ correlationId, messageId, eventType })`.
 * Credentials never reach a log line: connection strings are redacted.
 */
export function createLogger(component: string, level = 'info', flushMs = 0): Logger {
  return pino(
    {
      level,
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      redact: {
        paths: ['*.password', '*.connectionString', 'password', 'connectionString', 'url', '*.url'],
        censor: '[redacted]',
      },
    },
    flushMs > 0 ? batchedStdout(flushMs) : pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * Stdout written in batches of 4 KiB, or `flushMs` after the first line of a batch. Not sonic-boom's `periodicFlush`:
 * its timer writes an empty buffer through libuv's thread pool every period whether anything was logged or not, two
 * wake-ups of an idle process each time (a pool thread and the event loop). Here a timer runs only while lines wait.
 */
function batchedStdout(flushMs: number): pino.DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  let armed: NodeJS.Timeout | undefined;
  const arm = () => (armed ??= setTimeout(flushWaiting, flushMs).unref());
  const write = dest.write.bind(dest);
  const batchedWrite = (data: string) => {
    const ok = write(data);
    arm();
    return ok;
  };
  dest.write = batchedWrite;
  function flushWaiting(): void {
    armed = undefined;
    // Pino swaps `write` out when stdout's reader went away (EPIPE): nothing will drain, stop flushing into it.
    if (dest.write !== batchedWrite) return;
    // Unknown (another sonic-boom): flush every period, as its own periodic flush would.
    if (sonicBoomBuffered(dest) === 0) return;
    dest.flush();
    // A write still under way keeps the rest buffered: look again after another period.
    arm();
  }
  return dest;
}

/**
 * libpq's form for a Unix socket leaves the host empty (`postgresql://user:secret@/db?host=/var/run/postgresql`),
 * which is not a WHATWG URL: the same URL with `host` in the empty place, or the URL unchanged when it has a host.
 */
export function withPlaceholderHost(url: string, host: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/(?:[^/?#@]*@)?)\//, `$1${host}/`);
}

const PLACEHOLDER_HOST = 'placeholder.invalid';

/**
 * Strip credentials from a URL before it is logged or shown: the password in the user part and a `password` query
 * parameter (libpq reads both). A socket URL with an empty host is read with a placeholder host, removed again after.
 */
export function redactUrl(url: string): string {
  const parseable = withPlaceholderHost(url, PLACEHOLDER_HOST);
  try {
    const u = new URL(parseable);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    const out = u.toString();
    return parseable === url ? out : out.replace(`${PLACEHOLDER_HOST}/`, '/');
  } catch {
    return '[unparseable url]';
  }
}

/**
 * Errors as logs want them: type, message, code, stack and cause, nothing else. Driver errors carry references to
 * their client (with its connection parameters, password included); those must never be serialized.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error) || depth > 4) return typeof err === 'object' ? String(err) : err;
  const e = err as Error & { code?: unknown; cause?: unknown; severity?: unknown; detail?: unknown };
  return {
    type: e.constructor?.name ?? 'Error',
    message: e.message,
    ...(typeof e.code === 'string' || typeof e.code === 'number' ? { code: e.code } : {}),
    ...(typeof e.severity === 'string' ? { severity: e.severity } : {}),
    stack: e.stack,
    ...(e.cause !== undefined ? { cause: serializeError(e.cause, depth + 1) } : {}),
  };
}
