CREATE TABLE "dead_letters" (
	"key" text PRIMARY KEY NOT NULL,
	"message_id" text NOT NULL,
	"queue" text NOT NULL,
	"order_id" text,
	"type" text,
	"reason" text,
	"error" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "inbox" (
	"consumer" text NOT NULL,
	"message_id" text NOT NULL,
	"event_type" text NOT NULL,
	"processed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "inbox_consumer_message_id_pk" PRIMARY KEY("consumer","message_id")
);
--> statement-breakpoint
CREATE TABLE "saga_events" (
	"message_id" text PRIMARY KEY NOT NULL,
	"order_id" text NOT NULL,
	"type" text NOT NULL,
	"service" text NOT NULL,
	"causation_id" text,
	"traceparent" text,
	"reason" text,
	"occurred_at" timestamp (3) with time zone NOT NULL,
	"observed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sagas" (
	"order_id" text PRIMARY KEY NOT NULL,
	"seq" bigint GENERATED ALWAYS AS IDENTITY (sequence name "sagas_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"status" text NOT NULL,
	"reason" text,
	"started_at" timestamp (3) with time zone,
	"finished_at" timestamp (3) with time zone,
	"last_event_at" timestamp (3) with time zone NOT NULL,
	"last_event_type" text NOT NULL,
	"waiting_service" text,
	"waiting_step" text,
	"waiting_events" text[],
	"settled" boolean NOT NULL,
	"events" integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX "dead_letters_order_idx" ON "dead_letters" USING btree ("order_id");--> statement-breakpoint
CREATE INDEX "dead_letters_at_idx" ON "dead_letters" USING btree ("at");--> statement-breakpoint
CREATE INDEX "inbox_processed_idx" ON "inbox" USING btree ("consumer","processed_at");--> statement-breakpoint
CREATE INDEX "saga_events_order_idx" ON "saga_events" USING btree ("order_id");--> statement-breakpoint
CREATE INDEX "sagas_seq_idx" ON "sagas" USING btree ("seq");--> statement-breakpoint
CREATE INDEX "sagas_unsettled_idx" ON "sagas" USING btree ("last_event_at") WHERE NOT settled;--> statement-breakpoint
CREATE INDEX "sagas_status_seq_idx" ON "sagas" USING btree ("status","seq");--> statement-breakpoint
CREATE INDEX "sagas_settled_last_idx" ON "sagas" USING btree ("last_event_at") WHERE settled;--> statement-breakpoint
CREATE INDEX "sagas_finished_idx" ON "sagas" USING btree ("finished_at");