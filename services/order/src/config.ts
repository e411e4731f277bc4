import { z } from 'zod';
import { parseEnv } from '@saga/common/runtime/config';
import { serviceEnv } from '@saga/common/runtime/service';

export const OrderEnv = serviceEnv({ port: 8000, databaseUrl: 'postgres://order_svc@127.0.0.1:5432/orders' }).extend({
  /** Keep-alive comment interval on an open order event stream. */
  SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15_000),
});
export type OrderConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(OrderEnv, env);
