import amqp, { type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import { assertEventTopology, topologyNames } from '@saga/common/amqp';
import { backoffDelay, delay } from '@saga/common/lifecycle';
import type { Logger } from '@saga/common/logger';
import { isPgError } from '@saga/common/pg';
import type { RelayConfig } from './config';
import { createLsnTracker, formatLsn, parseLsn, type TxEntry } from './lsn';
import type { RelayMetrics } from './metrics';
import { toAmqpMessage } from './mapping';

export type SourceState = 'starting' | 'streaming' | 'standby' | 'reconnecting' | 'stopped';

export type Source = {
  name: string;
  slot: string;
  start: () => void;
  /** Stop reading, wait for outstanding confirms, acknowledge, close. */
  stop: () => Promise<void>;
  state: () => SourceState;
};

/** SQLSTATE 55006 object_in_use: the slot is streamed by another relay (we are the standby). */
const SLOT_IN_USE = '55006';
/** SQLSTATE 42710 duplicate_object: another relay created the slot first. */
const DUPLICATE_OBJECT = '42710';

class SessionError extends Error {}

/**
 * One source database: a pgoutput slot streamed into the events exchange through a confirm channel. Any error
 * ends the session; the next one starts from a clean state at the slot's confirmed position
 * (cf. pg-transactional-outbox's logical-replication-listener), so nothing acknowledged is ever unpublished.
 */
/**
 * Outbox payloads pass through untouched: pg-logical-replication decodes columns with pg's global type parsers,
 * and parsing jsonb only to serialize it again for the broker was the relay's largest cost per message.
 * Set once for the relay process (its other queries read no jsonb).
 */
const JSONB_OID = 3802;
pg.types.setTypeParser(JSONB_OID, (text: string) => text);

export function createSource(config: RelayConfig, source: { name: string; url: string }, log: Logger, metrics: RelayMetrics): Source {
  const slot = `${config.RELAY_SLOT_PREFIX}_${source.name}`;
  const labels = { source: source.name };
  const names = topologyNames(config.EVENTS_EXCHANGE);
  let state: SourceState = 'starting';
  let stopping = false;
  let drainCurrent: (() => Promise<void>) | undefined;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;

  const setState = (s: SourceState) => {
    state = s;
    metrics.streaming.set(labels, s === 'streaming' ? 1 : 0);
  };

  /** Create the slot when missing; answer its confirmed position. Never touches the outbox table. */
  async function ensureSlot(): Promise<bigint> {
    const client = new pg.Client({ connectionString: source.url, application_name: `cdc-relay ${source.name}` });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const read = () =>
        client.query<{ lsn: string | null; database: string; here: string; plugin: string }>(
          'SELECT confirmed_flush_lsn::text AS lsn, database, current_database() AS here, plugin FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        );
      let { rows } = await read();
      if (rows.length === 0) {
        try {
          await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
          log.info({ slot }, 'created replication slot');
        } catch (err) {
          if (!isPgError(err, DUPLICATE_OBJECT)) throw err;
        }
        ({ rows } = await read());
      }
      const row = rows[0];
      if (!row || row.lsn === null) throw new Error(`slot ${slot} could not be read`);
      if (row.database !== row.here || row.plugin !== 'pgoutput') {
        throw new Error(`slot ${slot} belongs to database ${row.database} with plugin ${row.plugin}; choose another RELAY_SLOT_PREFIX`);
      }
      return parseLsn(row.lsn);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async function session(): Promise<void> {
    let acked = await ensureSlot();
    let failure: ((err: Error) => void) | undefined;
    let failed: Error | undefined;
    const failedPromise = new Promise<never>((_, reject) => {
      failure = reject;
    });
    failedPromise.catch(() => undefined);
    const fail = (err: Error) => {
      if (failed) return;
      failed = err;
      wake();
      failure!(err);
    };

    // Waiters woken by every confirm and by a failure: a draining shutdown waits on them for the last confirms.
    let waiters: (() => void)[] = [];
    const wake = () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    };
    const waitForWake = () => new Promise<void>((resolve) => waiters.push(resolve));

    const conn = await amqp.connect(config.RABBITMQ_URL, { clientProperties: { connection_name: `cdc-relay ${source.name}` } });
    let service: LogicalReplicationService | undefined;
    let ackTimer: NodeJS.Timeout | undefined;
    try {
      conn.on('error', (err: unknown) => log.warn({ err }, 'broker connection error'));
      conn.on('close', () => fail(new SessionError('broker connection closed')));
      const ch: ConfirmChannel = await conn.createConfirmChannel();
      ch.on('error', (err: unknown) => log.warn({ err }, 'broker channel error'));
      ch.on('close', () => fail(new SessionError('broker channel closed')));
      let writable = true;
      ch.on('drain', () => {
        writable = true;
        resumeIfRoom();
      });
      ch.on('return', (msg: { properties: { messageId?: string } }) => {
        // With the alternate exchange in place nothing should come back; if it does, never drop it: restart from
        // the last acknowledged position and publish again.
        metrics.returned.inc(labels);
        log.error({ messageId: msg.properties.messageId }, 'broker returned a message as unroutable');
        fail(new SessionError('message returned unroutable'));
      });
      await assertEventTopology(ch, config.EVENTS_EXCHANGE);

      const svc = new LogicalReplicationService(
        { connectionString: source.url, application_name: `cdc-relay ${source.name}` },
        // auto:false is not enough: the library's status timer would acknowledge what it received; timeoutSeconds 0
        // turns it off and keepalives are answered below (FIELD-NOTES, trap 1). Messages are handled synchronously
        // as they are decoded (no flowControl queue): every publish of one network chunk then goes out in one
        // write, and backpressure pauses the replication socket itself (below), so nothing piles up in memory.
        { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
      );
      service = svc;
      const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [config.RELAY_PUBLICATION] });
      const tracker = createLsnTracker();
      let txn: TxEntry | undefined;
      let draining = false;
      metrics.acknowledgedLsn.set(labels, Number(acked));

      const sendAck = () => {
        // The library reports lsn+1 (FIELD-NOTES, trap 3); positions here are already end pointers (a commit's end,
        // a keepalive's WAL end), so report them exactly. PostgreSQL's shutdown waits for flush == sent, to the byte.
        if (acked > 0n) void svc.acknowledge(formatLsn(acked - 1n));
        metrics.acknowledgedLsn.set(labels, Number(acked));
      };
      const flushAck = () => {
        const a = tracker.ackable();
        if (a !== undefined && a > acked) {
          acked = a;
          sendAck();
        }
        metrics.inFlight.set(labels, tracker.inFlight());
      };
      ackTimer = setInterval(flushAck, config.RELAY_ACK_INTERVAL_MS);

      // Backpressure: while too many messages await confirms, or the channel's buffer is full, stop reading the
      // replication socket; what is already decoded from the current chunk is still handled (a bounded overshoot).
      const stream = () => (svc as unknown as { _connection?: { stream?: { pause: () => void; resume: () => void } } })._connection?.stream;
      let paused = false;
      const pauseIfFull = () => {
        if (!paused && (!writable || tracker.inFlight() >= config.RELAY_MAX_IN_FLIGHT)) {
          paused = true;
          stream()?.pause();
        }
      };
      const resumeIfRoom = () => {
        if (paused && writable && tracker.inFlight() < config.RELAY_MAX_IN_FLIGHT / 2) {
          paused = false;
          stream()?.resume();
        }
      };
      svc.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
        flushAck();
        // Nothing open, nothing awaiting a confirm: move the slot past WAL of other tables, so a quiet outbox does
        // not make the server keep WAL (FIELD-NOTES, trap 4).
        if (!draining && txn === undefined && tracker.idle()) {
          const l = parseLsn(lsn);
          if (l > acked) {
            acked = l;
            sendAck();
            return;
          }
        }
        if (shouldRespond) sendAck();
      });
      svc.on('error', (err: Error) => fail(err));
      svc.on('start', () => {
        if (stopping) {
          void drainCurrent?.();
          return;
        }
        setState('streaming');
        log.info({ slot, from: formatLsn(acked) }, 'streaming');
      });

      const exchange = config.EVENTS_EXCHANGE;
      // Labelled children resolved once: the hot path does no label lookups.
      const confirmSeconds = metrics.confirmSeconds.labels(labels);
      const publishedCount = metrics.published.labels(labels);
      const publish = (e: TxEntry, row: Record<string, unknown>) => {
        const message = toAmqpMessage(row, source.name, config.RELAY_OUTBOX_TABLE);
        let target: { exchange: string; routingKey: string };
        if (message.ok) {
          target = { exchange, routingKey: message.routingKey };
        } else {
          // Never dropped, never a crash loop: kept where an operator will see it.
          metrics.invalid.inc(labels);
          log.error({ reason: message.reason, id: row.id }, 'outbox row is not a valid event; sent to the invalid queue');
          target = { exchange: '', routingKey: names.invalidQueue };
        }
        tracker.published(e);
        const started = performance.now();
        const ok = ch.publish(target.exchange, target.routingKey, message.content, message.options, (err: unknown) => {
          if (err) {
            metrics.nacks.inc(labels);
            fail(new SessionError('broker nacked a message'));
            return;
          }
          confirmSeconds.observe((performance.now() - started) / 1000);
          if (message.ok) publishedCount.inc();
          tracker.confirmed(e);
          wake();
          resumeIfRoom();
        });
        if (!ok) writable = false;
        pauseIfFull();
      };

      svc.on('data', (_lsn: string, msg: { tag: string; [k: string]: unknown }) => {
        if (draining || failed) return;
        try {
          switch (msg.tag) {
            case 'begin':
              txn = tracker.begin();
              break;
            case 'insert': {
              const relation = msg.relation as { name: string };
              if (relation.name !== config.RELAY_OUTBOX_TABLE) break;
              // An entry opened here would never see its commit and would hold acknowledgements back for good:
              // restart from the slot instead.
              if (!txn) throw new SessionError('insert outside a transaction');
              publish(txn, msg.new as Record<string, unknown>);
              break;
            }
            case 'commit':
              // Acknowledge with the commit's end: the LSN of other messages is unreliable (FIELD-NOTES, trap 2).
              if (txn) tracker.commit(txn, parseLsn(msg.commitEndLsn as string));
              txn = undefined;
              break;
            default:
              break;
          }
        } catch (err) {
          fail(err instanceof Error ? err : new Error(String(err)));
        }
      });

      drainCurrent = async () => {
        draining = true;
        const deadline = Date.now() + config.SHUTDOWN_TIMEOUT_MS - 1000;
        while (!failed && tracker.inFlight() > 0 && Date.now() < deadline) {
          await Promise.race([waitForWake(), delay(100)]);
        }
        flushAck();
        log.info({ acknowledged: formatLsn(acked), unconfirmed: tracker.inFlight() }, 'drained');
        await svc.stop();
      };

      if (stopping) return;
      const streaming = svc.subscribe(plugin, slot);
      await Promise.race([
        streaming.then(() => {
          if (!stopping) throw new SessionError('replication stream ended');
        }),
        failedPromise,
      ]);
    } finally {
      drainCurrent = undefined;
      if (ackTimer) clearInterval(ackTimer);
      await service?.destroy().catch(() => undefined);
      await conn.close().catch(() => undefined);
    }
  }

  async function run(): Promise<void> {
    let attempt = 0;
    let standbyLogged = false;
    while (!stopping) {
      const started = Date.now();
      try {
        await session();
        if (stopping) break;
      } catch (err) {
        if (stopping) break;
        if (isPgError(err, SLOT_IN_USE)) {
          // Another replica streams this slot: stand by and try again soon; not an alarm.
          if (!standbyLogged) log.info({ slot }, 'slot is streamed by another relay; standing by');
          standbyLogged = true;
          setState('standby');
          await delay(config.RELAY_STANDBY_POLL_MS, abort.signal);
          continue;
        }
        standbyLogged = false;
        metrics.reconnects.inc(labels);
        log.warn({ err, slot }, 'session ended with an error');
      }
      setState('reconnecting');
      if (Date.now() - started > 30_000) attempt = 0;
      const wait = backoffDelay(attempt++, config.RELAY_RETRY_BASE_MS, config.RELAY_RETRY_MAX_MS);
      log.info({ retryInMs: wait }, 'restarting session');
      await delay(wait, abort.signal);
    }
    setState('stopped');
  }

  return {
    name: source.name,
    slot,
    start() {
      loop ??= run();
    },
    async stop() {
      stopping = true;
      abort.abort();
      if (drainCurrent) await drainCurrent();
      await loop;
    },
    state: () => state,
  };
}
