ALTER TABLE "orders" DROP CONSTRAINT "orders_idempotency_key_unique";--> statement-breakpoint
DROP INDEX "order_history_order_idx";--> statement-breakpoint
ALTER TABLE "order_history" DROP CONSTRAINT "order_history_pkey";--> statement-breakpoint
ALTER TABLE "order_history" ADD CONSTRAINT "order_history_order_id_id_pk" PRIMARY KEY("order_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "orders_idempotency_key_unique" ON "orders" USING btree ("idempotency_key") WHERE idempotency_key IS NOT NULL;