-- Custom migration (drizzle-kit generate --custom). Outbox rows are kept for a retention window instead of being
-- deleted by the statement that inserts them: they are the copy `npm run relay -- reconcile` republishes after a
-- database failover or a lost slot. Each service prunes them in batches (OUTBOX_RETENTION_HOURS) on the index
-- outbox_created_idx; the publication publishes inserts only, so pruning publishes nothing.
DROP TRIGGER IF EXISTS outbox_purge ON outbox;
--> statement-breakpoint
DROP FUNCTION IF EXISTS outbox_purge();
