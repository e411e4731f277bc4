-- Custom migration (drizzle-kit generate --custom). An outbox row is deleted by the statement that inserts it:
-- logical decoding still streams the INSERT (the publication publishes inserts only), the table stays empty, and
-- the service pays no second statement per transaction for the delete.
CREATE FUNCTION outbox_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox o USING inserted i WHERE o.id = i.id;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER outbox_purge AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_purge();
