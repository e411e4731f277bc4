import { z } from 'zod';
import { parseEnv } from '@saga/common/runtime/config';
import { serviceEnv } from '@saga/common/runtime/service';

export const PaymentEnv = serviceEnv({
  port: 8002,
  databaseUrl: 'postgres://payment_svc@127.0.0.1:5432/payment',
}).extend({
  /** Largest single payment authorized, in cents (the original demo's $1000). */
  PAYMENT_LIMIT_CENTS: z.coerce.number().int().nonnegative().default(100_000),
});
export type PaymentConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(PaymentEnv, env);
