/** `npm run relay -- reconcile --source <name> --since <ISO time> [--until <ISO time>]` (README: PostgreSQL failover). */
import pg from 'pg';
import { topologyNames } from '@saga/common/messaging/topology';
import { brokerConnector } from '@saga/common/messaging/broker';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { createLogger, redactUrl } from '@saga/common/runtime/logger';
import type { Logger } from '@saga/common/runtime/logger';
import { loadConfig, RelayEnv, type RelayConfig } from './config';
import { connectPublisher } from './publisher';
import { parseReconcileArgs, reconcile, type ReconcileArgs } from './reconcile';
import { DEFAULT_MARGIN_SECONDS, parseRecoverArgs, recreateSlot } from './recover';
import { readSlot } from './slots';

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
  await republish(config, source, parsed, log);
}

/** Republish a window of one source's outbox; exit code 0 when the broker stored every message, else 1. */
async function republish(
  config: RelayConfig,
  source: { name: string; url: string },
  window: ReconcileArgs,
  log: Logger,
): Promise<void> {
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
      { source: source.name, database: redactUrl(source.url), since: window.since, until: window.until ?? 'now' },
      'reconcile started',
    );
    const report = await reconcile({
      ...window,
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

const RECOVER_USAGE = {
  name: 'saga relay recover',
  summary:
    "recover a lost replication slot: create it again, then republish the outbox rows from the slot marker's last acknowledged commit time (docs/failover.md)",
  details: [
    `arguments: --source <name from RELAY_SOURCES> [--margin-seconds <n>, default ${DEFAULT_MARGIN_SECONDS}: how far before the marker's time to start]`,
    'from a checkout: npm run relay -- recover --source order',
    'refuses (exit 1, nothing changed) when the slot exists and is usable, when no marker says it existed, or when',
    'OUTBOX_RETENTION_HOURS no longer covers the window; exit 0 when the broker confirmed every message',
  ],
  env: RelayEnv,
};

export async function runRecoverCommand(args: string[]): Promise<void> {
  answerArgs({ ...RECOVER_USAGE, accepts: (a) => checked(parseRecoverArgs(a, sourceNames())) }, args);
  const config = loadConfig();
  const log = createLogger('cdc-relay', config.LOG_LEVEL);
  const parsed = parseRecoverArgs(
    args,
    config.RELAY_SOURCES.map((s) => s.name),
  );
  if (typeof parsed === 'string') throw new Error(parsed);
  const source = config.RELAY_SOURCES.find((s) => s.name === parsed.source)!;
  const slot = `${config.RELAY_SLOT_PREFIX}_${source.name}`;
  const client = new pg.Client({ connectionString: source.url, application_name: 'cdc-relay recover' });
  await client.connect();
  let since: Date;
  try {
    const done = await recreateSlot(client, {
      slot,
      marginSeconds: parsed.marginSeconds,
      retentionHours: config.OUTBOX_RETENTION_HOURS,
    });
    since = done.since;
    log.warn({ slot, since, droppedLostSlot: done.dropped }, 'replication slot created again; reconciling');
  } finally {
    await client.end().catch(() => undefined);
  }
  // From here the slot exists again, so recover would refuse a second run: every way out names the reconcile that
  // finishes the job.
  const again = `npm run relay -- reconcile --source ${source.name} --since ${since.toISOString()}`;
  try {
    await republish(config, source, { source: source.name, since }, log);
  } catch (err) {
    log.error({ err, again }, 'the reconcile failed: the slot is back, run the reconcile for the same window');
    throw err;
  }
  if (process.exitCode === 1)
    log.error(
      { again },
      'some messages were not stored: the slot is back, run the reconcile again for the same window',
    );
}

function sourceNames(): string[] {
  try {
    return loadConfig().RELAY_SOURCES.map((s) => s.name);
  } catch {
    return [];
  }
}
const checked = (r: object | string) => (typeof r === 'string' ? r : true);

/**
 * Rows written while no slot exists are only in the table: a reconcile run before the slot is back would leave those
 * written between its end and the slot's creation unpublished by anyone. So the slot must exist first.
 */
async function requireSlot(url: string, slot: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'cdc-relay reconcile (slot check)' });
  await client.connect();
  try {
    if (!(await readSlot(client, slot)).row)
      throw new Error(
        `replication slot ${slot} does not exist on this server: create it first (npm run migrate), then reconcile, so that every row is either in the window or streamed`,
      );
  } finally {
    await client.end().catch(() => undefined);
  }
}
