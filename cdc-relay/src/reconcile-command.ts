/** `npm run relay -- reconcile --source <name> --since <ISO time> [--until <ISO time>]` (README: PostgreSQL failover). */
import pg from 'pg';
import { topologyNames } from '@saga/common/messaging/topology';
import { brokerConnector } from '@saga/common/messaging/broker';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { createLogger, redactUrl } from '@saga/common/runtime/logger';
import { loadConfig, RelayEnv } from './config';
import { connectPublisher } from './publisher';
import { parseReconcileArgs, reconcile } from './reconcile';

const USAGE = {
  name: 'saga relay reconcile',
  summary:
    'republish the outbox rows of one source database written in a time window, from the table (after a failover or a lost slot); safe to repeat: consumers dedupe by message id',
  details: [
    'arguments: --source <name from RELAY_SOURCES> --since <ISO time with zone> [--until <ISO time>, default: to the end of the table]',
    'from a checkout: npm run relay -- reconcile --source order --since 2026-11-27T10:15:00Z',
    "run it after the slot exists again on the server the relay streams (it refuses otherwise), with --since a minute before the relay's",
    'last acknowledged commit time (relay_acknowledged_commit_timestamp_seconds, or the "replication slot disappeared" log line)',
    'exit 0 when the broker confirmed every message, 1 otherwise (run it again)',
  ],
  env: RelayEnv,
};

export async function runReconcileCommand(args: string[]): Promise<void> {
  const sourceNames = () => {
    try {
      return loadConfig().RELAY_SOURCES.map((s) => s.name);
    } catch {
      return [];
    }
  };
  answerArgs(
    {
      ...USAGE,
      accepts: (a) => {
        const r = parseReconcileArgs(a, sourceNames());
        return typeof r === 'string' ? r : true;
      },
    },
    args,
  );
  const config = loadConfig();
  const log = createLogger('cdc-relay', config.LOG_LEVEL);
  const parsed = parseReconcileArgs(
    args,
    config.RELAY_SOURCES.map((s) => s.name),
  );
  if (typeof parsed === 'string') throw new Error(parsed);
  const source = config.RELAY_SOURCES.find((s) => s.name === parsed.source)!;
  await requireSlot(source.url, `${config.RELAY_SLOT_PREFIX}_${source.name}`);
  const publisher = await connectPublisher({
    broker: brokerConnector(config.RABBITMQ_URL),
    name: `cdc-relay reconcile ${source.name}`,
    exchange: config.EVENTS_EXCHANGE,
    maxBodyBytes: config.RELAY_MAX_MESSAGE_BYTES,
    onReturned: (messageId) =>
      log.error({ messageId }, 'broker returned a message as unroutable; it counts as not stored'),
  });
  try {
    log.info(
      { source: source.name, database: redactUrl(source.url), since: parsed.since, until: parsed.until ?? 'now' },
      'reconcile started',
    );
    const report = await reconcile({
      ...parsed,
      url: source.url,
      table: config.RELAY_OUTBOX_TABLE,
      exchange: config.EVENTS_EXCHANGE,
      invalidQueue: topologyNames(config.EVENTS_EXCHANGE).invalidQueue,
      publisher,
      log,
    });
    log.info(report, 'reconciled');
    process.exitCode = report.refused === 0 ? 0 : 1;
  } finally {
    await publisher.close();
  }
}

/**
 * Rows written while no slot exists are only in the table: a reconcile run before the slot is back would leave those
 * written between its end and the slot's creation unpublished by anyone. So the slot must exist first.
 */
async function requireSlot(url: string, slot: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'cdc-relay reconcile (slot check)' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (!rowCount)
      throw new Error(
        `replication slot ${slot} does not exist on this server: create it first (npm run migrate), then reconcile, so that every row is either in the window or streamed`,
      );
  } finally {
    await client.end().catch(() => undefined);
  }
}
