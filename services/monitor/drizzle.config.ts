import { defineConfig } from 'drizzle-kit';

// Generates SQL only (no database needed): `npm run generate -w @saga/monitor`. Never hand-edit the output.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: '../../migrations/monitor',
  migrations: { table: '__drizzle_migrations_monitor', schema: 'drizzle' },
  strict: true,
});
