CREATE TABLE "order_watch" (
	"order_id" uuid NOT NULL,
	"watcher" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "order_watch_order_id_watcher_pk" PRIMARY KEY("order_id","watcher")
);
