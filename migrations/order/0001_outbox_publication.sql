-- Custom migration (drizzle-kit generate --custom). The CDC relay streams the INSERTs of this publication with
-- pgoutput; deleting an outbox row (services delete in the same transaction) is not an event.
CREATE PUBLICATION outbox_pub FOR TABLE outbox WITH (publish = 'insert');
