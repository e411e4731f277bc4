import { defineConfig } from 'drizzle-kit';

// Generates SQL only (no database needed): `npm run generate -w @saga/order`. Never hand-edit the output;
// the publication lives in a --custom migration.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: '../../migrations/order',
  migrations: { table: '__drizzle_migrations_order', schema: 'drizzle' },
  strict: true,
});
