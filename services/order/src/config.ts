import { z } from 'zod';
import { AuthEnv, authConfigProblem } from '@saga/common/http/auth-config';
import { ConfigError, parseEnv } from '@saga/common/runtime/config';
import { serviceEnv } from '@saga/common/runtime/service';

export const OrderEnv = serviceEnv({ port: 8000, databaseUrl: 'postgres://order_svc@127.0.0.1:5432/orders' })
  .extend(AuthEnv.shape)
  .extend({
    /** Keep-alive comment interval on an open order event stream. */
    SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15_000),
    /** Open order event streams: per caller, and in all on this replica (beyond them: 429 and 503). */
    SSE_MAX_PER_CALLER: z.coerce.number().int().min(1).default(8),
    SSE_MAX_STREAMS: z.coerce.number().int().min(1).default(1000),
    /** POST /orders per caller: a token bucket of ORDER_RATE_BURST refilled at ORDER_RATE_PER_SECOND (beyond: 429). */
    ORDER_RATE_PER_SECOND: z.coerce.number().positive().default(100),
    ORDER_RATE_BURST: z.coerce.number().int().min(1).default(200),
    /** Orders waiting to be written beyond this are refused with 503 and Retry-After (load shedding). */
    ORDER_QUEUE_MAX: z.coerce.number().int().min(1).default(2000),
    /**
     * Pacing of order writes while sagas queue up (the orders in progress at least a quarter of ORDER_PENDING_MAX): a
     * write that is not full then starts at most once per this many ms, so more orders share a commit. Otherwise, or
     * at 0, a write starts as soon as a connection is free.
     */
    ORDER_WRITE_INTERVAL_MS: z.coerce.number().int().min(0).max(1000).default(10),
    /**
     * Orders in progress (placed, not final) at which new ones are refused with 503 and Retry-After: the saga's
     * backlog is bounded, and so is how long an accepted order takes to finish.
     */
    ORDER_PENDING_MAX: z.coerce.number().int().min(1).default(600),
  });
export type OrderConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => {
  const config = parseEnv(OrderEnv, env);
  const problem = authConfigProblem(config);
  if (problem) throw new ConfigError([{ variable: 'AUTH_ISSUER', message: problem }]);
  return config;
};
