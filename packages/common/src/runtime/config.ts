import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { BrokerUrl } from '../messaging/broker';
import { withPlaceholderHost } from './logger';

/** Raised when the environment does not describe a runnable process; the message names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parse the environment once, at start-up, and fail fast naming each variable.
 * Every long-running component calls this from its `loadConfig`.
 */
export function parseEnv<S extends z.ZodObject>(
  schema: S,
  env: Record<string, string | undefined>,
): Readonly<z.infer<S>> {
  const result = schema.safeParse(withSecretFiles(env, Object.keys(schema.shape), (p) => readFileSync(p, 'utf8')));
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => ({ variable: i.path.join('.') || '(env)', message: i.message })),
    );
  }
  return Object.freeze(result.data);
}

/**
 * A PostgreSQL connection URL as node-postgres reads it, TCP (`postgres://user@host:5432/db`) or a Unix socket
 * (`postgresql:///db?host=/var/run/postgresql`, `postgresql://user:secret@/db?host=/var/run/postgresql`,
 * `postgres://user@%2Fvar%2Frun%2Fpostgresql/db`). A socket saves the TCP stack on both ends of every round trip
 * when the database runs on the same host. An empty host (libpq's form for a socket) is not a WHATWG URL, so it is
 * checked with a placeholder host in its place; node-postgres reads the original.
 */
export const DatabaseUrl = z
  .string()
  .min(1)
  .refine((v) => {
    if (!/^postgres(ql)?:\/\/./.test(v)) return false;
    try {
      new URL(withPlaceholderHost(v, 'localhost'));
      return true;
    } catch {
      return false;
    }
  }, 'expected postgres://… or postgresql://… (a Unix socket as ?host=/path)');

/** Variables every process shares. */
export const BaseEnv = z.object({
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * Log lines are collected for at most this long (or until 4 KiB) and written together; 0 writes each line as it
   * comes. Every process exit flushes what is collected; only a SIGKILL loses it.
   */
  LOG_FLUSH_MS: z.coerce.number().int().min(0).max(10_000).default(100),
  /** One node, or the nodes of a cluster separated by commas (see broker.ts). */
  RABBITMQ_URL: BrokerUrl.default('amqp://guest:guest@127.0.0.1:5672'),
  EVENTS_EXCHANGE: z.string().min(1).default('saga.events'),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(15000),
});

/** `<NAME>_FILE=/path` sets `<NAME>` from that file's content (mounted Kubernetes secrets) unless `<NAME>` is set. */
export function withSecretFiles(
  env: Record<string, string | undefined>,
  known: readonly string[],
  readFile: (p: string) => string,
): Record<string, string | undefined> {
  const out = { ...env };
  for (const key of known) {
    const file = env[`${key}_FILE`];
    if (file && out[key] === undefined) out[key] = readFile(file).trim();
  }
  return out;
}
