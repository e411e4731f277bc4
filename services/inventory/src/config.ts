import { parseEnv } from '@saga/common/runtime/config';
import { serviceEnv } from '@saga/common/runtime/service';

export const InventoryEnv = serviceEnv({
  port: 8001,
  databaseUrl: 'postgres://inventory_svc@127.0.0.1:5432/inventory',
});
export type InventoryConfig = ReturnType<typeof loadConfig>;
export const loadConfig = (env: Record<string, string | undefined> = process.env) => parseEnv(InventoryEnv, env);
