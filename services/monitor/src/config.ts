import { z } from 'zod';
import { parseEnv } from '@saga/common/config';
import { serviceEnv } from '@saga/common/service';

export const MonitorEnv = serviceEnv({ port: 8003, databaseUrl: 'postgres://monitor_svc@127.0.0.1:5432/monitor' }).extend({
  /** A saga that is not final and saw no event for this long is stuck (listed, counted by `sagas_stuck`). */
  SAGA_STUCK_AFTER_MS: z.coerce.number().int().min(1).default(30_000),
});
export type MonitorConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(MonitorEnv, env);
