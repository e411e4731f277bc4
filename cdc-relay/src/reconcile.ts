/**
 * Reconcile: republish the outbox rows of one source database written in a time window, read from the table (the
 * rows are kept OUTBOX_RETENTION_HOURS). For the events the WAL can no longer give the relay: after a failover to a
 * server without the relay's slot, or a slot dropped or invalidated by max_slot_wal_keep_size. Messages are encoded
 * by the relay's own codec, so a republished message has the same id, routing key, properties and headers as the
 * original; consumers dedupe by message id, so republishing more than was missing is harmless.
 *
 * Reads with the relay's role (RELAY_SOURCES): it already has SELECT on the outbox and nothing else, so the tool
 * cannot change any data; the services' roles may write their tables, and a superuser may do anything.
 */
import pg from 'pg';
import {
  encodeInvalid,
  encodeOutboxRow,
  type EncodedMessage,
  type EncodeLimits,
} from '@saga/common/messaging/envelope-codec';
import type { Logger } from '@saga/common/runtime/logger';
import type { PublisherPort, Settled } from './pipe';

export type ReconcileArgs = { source: string; since: Date; until?: Date };

/**
 * Pure: the arguments after `reconcile`, or why not. `--source <name>` (one of `sources`), `--since <ISO time>`,
 * optional `--until <ISO time>` (default: to the end of the table). A time must carry its zone (`Z` or `+01:00`): the outbox stores
 * UTC instants and a zoneless time would be read in the machine's zone.
 */
export function parseReconcileArgs(args: readonly string[], sources: readonly string[]): ReconcileArgs | string {
  const values: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const [key, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (!['--source', '--since', '--until'].includes(key)) return `unknown argument: ${a}`;
    const value = inline ?? args[++i];
    if (value === undefined || value.startsWith('--')) return `${key} needs a value`;
    values[key.slice(2)] = value;
  }
  const time = (name: string): Date | string | undefined => {
    const v = values[name];
    if (v === undefined) return undefined;
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v))
      return `--${name}: expected an ISO 8601 time with its zone, e.g. 2026-11-27T10:15:00Z (got ${v})`;
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? `--${name}: not a time: ${v}` : d;
  };
  if (!values.source) return `--source is required (one of ${sources.join(', ')})`;
  if (!sources.includes(values.source))
    return `--source: unknown source ${values.source} (RELAY_SOURCES has ${sources.join(', ')})`;
  if (!values.since)
    return "--since is required: the time to republish from (a little before the relay's last acknowledged commit time)";
  const since = time('since');
  const until = time('until');
  if (typeof since === 'string') return since;
  if (typeof until === 'string') return until;
  if (since === undefined) return '--since is required';
  if (until && until <= since) return '--until must be after --since';
  return { source: values.source, since, ...(until ? { until } : {}) };
}

export type ReconcileReport = {
  source: string;
  since: string;
  until: string;
  /** Rows of the window read from the outbox. */
  rows: number;
  /** Published and confirmed by the broker (stored, not returned). */
  published: number;
  /** Rows that are not a valid event: sent to the invalid queue, as the relay does. */
  invalid: number;
  /** Not stored by the broker (nack, return, lost channel): run the command again. */
  refused: number;
  first?: string;
  last?: string;
  seconds: number;
};

export type ReconcilePublisher = PublisherPort & {
  limits: EncodeLimits;
  onWritable: (fn: () => void) => void;
  lost: Promise<never>;
};

export type ReconcileOptions = ReconcileArgs & {
  /** The source database, as the relay's role. */
  url: string;
  table: string;
  exchange: string;
  invalidQueue: string;
  publisher: ReconcilePublisher;
  log: Logger;
  /** Rows read per query (keyset pages: nothing is held open between pages). */
  pageSize?: number;
  /** Messages published and not yet confirmed before reading pauses. */
  window?: number;
};

type Row = Record<string, unknown> & { at: string };

/** Republish the window; resolves with the counts once every message is settled. */
export async function reconcile(o: ReconcileOptions): Promise<ReconcileReport> {
  const started = Date.now();
  const report: ReconcileReport = {
    source: o.source,
    since: o.since.toISOString(),
    // No upper bound by default: up to the last row the table holds when the read reaches it (the database's clock,
    // not this host's); rows committed after that are the slot's to stream.
    until: o.until?.toISOString() ?? 'end of table',
    rows: 0,
    published: 0,
    invalid: 0,
    refused: 0,
    seconds: 0,
  };
  const client = new pg.Client({ connectionString: o.url, application_name: `cdc-relay reconcile ${o.source}` });
  client.on('error', () => undefined);
  await client.connect();
  const sender = createSender(o, report);
  const window = o.window ?? 1000;
  try {
    for await (const row of windowRows(client, o)) {
      sender.check();
      report.rows++;
      report.first ??= new Date(row.created_at as Date).toISOString();
      report.last = new Date(row.created_at as Date).toISOString();
      sender.sendRow(row);
      if (sender.inFlight() >= window || !o.publisher.writable())
        await sender.waitFor(() => sender.inFlight() < window / 2 && o.publisher.writable());
    }
    await sender.waitFor(() => sender.inFlight() === 0);
    sender.check();
  } finally {
    await client.end().catch(() => undefined);
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/**
 * The window's rows in (created_at, id) order, by keyset pages, the cursor kept as the server's text (microseconds:
 * a JS Date would round to milliseconds and skip or repeat rows at a page boundary); nothing is held open between
 * pages. payload and headers as JSON text, as the relay streams them, so the message body is the same bytes.
 */
async function* windowRows(client: pg.Client, o: ReconcileOptions): AsyncGenerator<Record<string, unknown>> {
  const pageSize = o.pageSize ?? 1000;
  let cursor: { at: string; id: string } | undefined;
  for (;;) {
    const { rows } = await client.query<Row>(
      `SELECT id::text AS id, aggregatetype, aggregateid, type, payload::text AS payload, headers::text AS headers,
              created_at, created_at::text AS at
         FROM ${pg.escapeIdentifier(o.table)}
        WHERE created_at >= $1 AND ($2::timestamptz IS NULL OR created_at < $2) AND ($3::timestamptz IS NULL OR (created_at, id) > ($3::timestamptz, $4::uuid))
        ORDER BY created_at, id LIMIT $5`,
      [o.since, o.until ?? null, cursor?.at ?? null, cursor?.id ?? null, pageSize],
    );
    for (const { at: _at, ...row } of rows) yield row;
    const last = rows[rows.length - 1];
    if (!last || rows.length < pageSize) return;
    cursor = { at: last.at, id: String(last.id) };
  }
}

/** Publishes rows as the relay would, counting into `report`; `waitFor` waits on settles (or a lost connection). */
function createSender(o: ReconcileOptions, report: ReconcileReport) {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let lost: Error | undefined;
  o.publisher.onWritable(() => wake?.());
  o.publisher.lost.catch((err: Error) => {
    lost = err;
    wake?.();
  });
  const send = (m: EncodedMessage, exchange: string, routingKey: string, onStored: () => void) => {
    inFlight++;
    o.publisher.publish(exchange, routingKey, m.content, m.options, (s: Settled) => {
      if (s === 'confirmed') onStored();
      else report.refused++;
      inFlight--;
      wake?.();
    });
  };
  const sendInvalid = (row: Record<string, unknown>, reason: string) => {
    o.log.warn({ id: row.id, reason }, 'outbox row is not a valid event; sent to the invalid queue');
    send(encodeInvalid(row, o.source, o.table, reason, o.publisher.limits), '', o.invalidQueue, () => report.invalid++);
  };
  return {
    inFlight: () => inFlight,
    check(): void {
      if (lost) throw lost;
    },
    async waitFor(ok: () => boolean): Promise<void> {
      while (!ok() && !lost) await new Promise<void>((r) => (wake = r));
      wake = undefined;
    },
    sendRow(row: Record<string, unknown>): void {
      const m = encodeOutboxRow(row, o.source, o.table, o.publisher.limits);
      if (!m.ok) return sendInvalid(row, m.reason);
      try {
        send(m, o.exchange, m.routingKey, () => report.published++);
      } catch (err) {
        // The client could not encode it and sent nothing (the relay does the same).
        inFlight--;
        sendInvalid(row, `the AMQP client cannot encode it: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
  };
}
