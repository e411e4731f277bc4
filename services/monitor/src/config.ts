import { z } from 'zod';
import { parseEnv } from '@saga/common/runtime/config';
import { serviceEnv } from '@saga/common/runtime/service';

export const MonitorEnv = serviceEnv({
  port: 8003,
  databaseUrl: 'postgres://monitor_svc@127.0.0.1:5432/monitor',
}).extend({
  /** A saga that is not final and saw no event for this long is stuck (listed, counted by `sagas_stuck`). */
  SAGA_STUCK_AFTER_MS: z.coerce.number().int().min(1).default(30_000),
  /** Settled sagas (with their events) and dead-letter reports are forgotten after this long; unsettled ones stay. */
  MONITOR_RETENTION_HOURS: z.coerce.number().int().min(1).default(168),
  MONITOR_PRUNE_EVERY_MS: z.coerce.number().int().min(10).default(60_000),
});
export type MonitorConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(MonitorEnv, env);
