import { defineConfig } from 'drizzle-kit';

// Generates SQL only (no database needed): `npm run generate -w @saga/inventory`. Never hand-edit the output;
// the publication lives in a --custom migration.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: '../../migrations/inventory',
  migrations: { table: '__drizzle_migrations_inventory', schema: 'drizzle' },
  strict: true,
});
