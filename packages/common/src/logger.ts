import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The one root logger of a process: JSON lines on stdout. Children carry the correlation id
 * (the order id), e.g. `log.child({ correlationId, messageId, eventType })`.
 * Credentials never reach a log line: connection strings are redacted.
 */
export function createLogger(component: string, level = 'info'): Logger {
  return pino({
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: ['*.password', '*.connectionString', 'password', 'connectionString', 'url', '*.url'], censor: '[redacted]' },
  });
}

/** Strip credentials from a URL before it is logged or shown. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
