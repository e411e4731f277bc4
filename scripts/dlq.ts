/**
 * saga dlq (npm run dlq --): the operator's view of every queue where messages wait for a person.
 *   list|show|replay|purge <queue> [messageId] [--limit N] [--json] [--yes]
 * <queue> is a service (its <service>.events.dlq), `unroutable` (<exchange>.unroutable: events no binding matched)
 * or `invalid` (<exchange>.invalid: outbox rows the relay could not turn into an event).
 * Messages are streamed: each is printed or replayed as it arrives and not kept. Reading does not consume: what is
 * not acknowledged returns to its queue when the tool exits. Only the messages in the queue when the tool started
 * are visited, so a replay that lands back in the same queue does not loop.
 */
import type { ConsumeMessage } from 'amqplib';
import { z } from 'zod';
import { consumerQueueNames, sendConfirmed, topologyNames } from '@saga/common/messaging/topology';
import { connectBroker } from '@saga/common/messaging/broker';
import { brokerUser } from '@saga/common/messaging/publisher-trust';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { BaseEnv, parseEnv } from '@saga/common/runtime/config';
import { DEAD_LETTER_HEADER as DLH } from '@saga/common/messaging/envelope-codec';
import { DATABASE_OWNERS, consumerQueueOf, isDatabaseOwner } from '@saga/common/contracts/service-names';
import { terminalJson, visible } from './lib/terminal-text';
import { parseArgs } from 'node:util';
import { usageError } from '@saga/common/runtime/cli-args';

const COMMANDS = ['list', 'show', 'replay', 'purge'] as const;
const QUEUES = [...DATABASE_OWNERS, 'unroutable', 'invalid'] as const;
type Command = (typeof COMMANDS)[number];

export type DlqArgs = {
  command: Command;
  queue: (typeof QUEUES)[number];
  messageId?: string;
  limit?: number;
  json: boolean;
  yes: boolean;
};

/** Pure: parse the arguments, or say what is wrong. */
export function parseDlqArgs(argv: readonly string[]): DlqArgs | { error: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { json: { type: 'boolean' }, yes: { type: 'boolean' }, limit: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return { error: usageError(err) };
  }
  const flags = {
    json: parsed.values.json ?? false,
    yes: parsed.values.yes ?? false,
    limit: undefined as number | undefined,
  };
  if (parsed.values.limit !== undefined) {
    const n = Number(parsed.values.limit);
    if (!Number.isInteger(n) || n < 1)
      return { error: `--limit needs a positive whole number, got ${parsed.values.limit}` };
    flags.limit = n;
  }
  const positional = parsed.positionals;
  const [command, queue, messageId, ...extra] = positional;
  if (!COMMANDS.includes(command as Command)) return { error: `the command is one of ${COMMANDS.join('|')}` };
  if (!(QUEUES as readonly string[]).includes(queue ?? '')) return { error: `the queue is one of ${QUEUES.join('|')}` };
  if (extra.length) return { error: `unexpected ${extra.join(' ')}` };
  if (messageId !== undefined && !z.string().uuid().safeParse(messageId).success)
    return { error: `${messageId} is not a message id (a uuid)` };
  if (command === 'replay' && queue === 'invalid')
    return { error: 'invalid rows cannot be replayed: fix the producer, then purge them' };
  return {
    command: command as Command,
    queue: queue as DlqArgs['queue'],
    messageId,
    json: flags.json,
    yes: flags.yes,
    limit: flags.limit,
  };
}

const USAGE = {
  name: 'saga dlq',
  summary: 'inspect, replay and purge the queues where messages wait for an operator',
  details: [
    `arguments: ${COMMANDS.join('|')} <${QUEUES.join('|')}> [messageId] [--limit N] [--json] [--yes]`,
    '  list     one line per message: id, type, reason, when, error (--json: one JSON object per line)',
    '  show     each message in full: properties, headers, body',
    "  replay   send back after a fix: a service's messages to <service>.events (its inbox drops duplicates),",
    '           unroutable ones to the exchange with their routing key; invalid ones cannot be replayed',
    '  purge    delete them (all, the one with messageId, or the first N); needs --yes',
    '  --limit N  visit at most N messages; --json  machine-readable output',
    'npm run dlq -- <arguments> does the same from a checkout.',
  ],
  env: BaseEnv,
  accepts: (a: string[]) => {
    const parsed = parseDlqArgs(a);
    return 'error' in parsed ? parsed.error : true;
  },
};

/** Headers our consumer adds on the way to the DLQ or the retry queue; removed on replay. */
const INTERNAL =
  /^x-(dead-letter|dead-lettered|original|attempt|last-error|death|first-death|last-death|delivery-count)/;

async function main(args: DlqArgs) {
  const config = parseEnv(BaseEnv, process.env);
  const topology = topologyNames(config.EVENTS_EXCHANGE);
  const queue = isDatabaseOwner(args.queue)
    ? consumerQueueNames(consumerQueueOf(args.queue)).dlq
    : args.queue === 'unroutable'
      ? topology.unroutableQueue
      : topology.invalidQueue;
  const print = (line: unknown) => process.stdout.write(`${typeof line === 'string' ? line : terminalJson(line)}\n`);
  const conn = await connectBroker(config.RABBITMQ_URL, { clientProperties: { connection_name: 'dlq tool' } });
  conn.on('error', () => undefined); // the failing call rejects too, with the same error
  try {
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => undefined);
    const { messageCount } = await ch.checkQueue(queue).catch((err: { code?: number }) => {
      throw err.code === 404
        ? new Error(`${queue} does not exist yet (its service or the relay has not run against this broker)`)
        : err;
    });
    if (args.command === 'purge' && !args.yes)
      throw new Error(`purge deletes messages from ${queue} (${messageCount} now): add --yes`);
    if (!args.json && args.command !== 'purge') print(`${messageCount} message(s) in ${queue}`);
    if (args.command === 'purge' && !args.messageId && !args.limit) {
      const { messageCount: purged } = await ch.purgeQueue(queue);
      print(args.json ? { queue, purged } : `purged ${purged} message(s) from ${queue}`);
      return;
    }
    let visited = 0;
    let done = 0;
    const want = Math.min(messageCount, args.limit ?? Infinity);
    const handle = async (m: ConsumeMessage) => {
      if (args.messageId && m.properties.messageId !== args.messageId) return; // left unacknowledged: returns on exit
      const h = m.properties.headers ?? {};
      if (args.command === 'list') {
        const row = {
          messageId: m.properties.messageId,
          type: m.properties.type,
          routingKey: m.fields.routingKey,
          reason: h[DLH.reason],
          at: h[DLH.at],
          error: h[DLH.error],
        };
        print(
          args.json
            ? row
            : [row.messageId, row.type, row.reason ?? row.routingKey, row.at, row.error].map(visible).join('\t'),
        );
      } else if (args.command === 'show') {
        const full = { properties: m.properties, fields: m.fields, body: m.content.toString('utf8') };
        print(args.json ? full : terminalJson(full, 2));
      } else if (args.command === 'replay') {
        const headers = Object.fromEntries(Object.entries(h).filter(([k]) => !INTERNAL.test(k)));
        // Signed as this tool's user (the broker refuses another name): consumers apply it when that user is trusted.
        const options = { ...m.properties, headers, persistent: true, userId: brokerUser(config.RABBITMQ_URL) };
        if (isDatabaseOwner(args.queue)) await sendConfirmed(ch, consumerQueueOf(args.queue), m.content, options);
        else
          await new Promise<void>((resolve, reject) =>
            ch.publish(config.EVENTS_EXCHANGE, m.fields.routingKey, m.content, options, (err) =>
              err ? reject(err instanceof Error ? err : new Error('nacked')) : resolve(),
            ),
          );
        ch.ack(m);
      } else {
        ch.ack(m);
      }
      done++;
    };
    if (want > 0) {
      // Deliveries are handled one after another (replay awaits each confirm before acknowledging).
      await new Promise<void>((resolve, reject) => {
        let chain = Promise.resolve();
        let tag = '';
        let idle: NodeJS.Timeout | undefined;
        const finish = () => {
          clearTimeout(idle);
          chain.then(() => (tag ? ch.cancel(tag) : undefined)).then(() => resolve(), reject);
        };
        // Someone else may take messages meanwhile: stop when nothing arrives for a while.
        const armIdle = () => {
          clearTimeout(idle);
          idle = setTimeout(finish, 3000);
        };
        armIdle();
        ch.consume(
          queue,
          (m) => {
            if (!m || visited >= want) return;
            visited++;
            armIdle();
            chain = chain.then(() => handle(m));
            chain.catch(reject);
            if (visited >= want) finish();
          },
          { noAck: false },
        ).then((ok) => (tag = ok.consumerTag), reject);
      });
    }
    if (args.messageId && done === 0) {
      console.error(`no message ${args.messageId} in ${queue}`);
      process.exitCode = 1;
    }
    if (args.command === 'replay' || args.command === 'purge') {
      // A round trip on the channel before closing: the broker has then processed every ack sent before it.
      // Closing the connection right after the acks let some messages return to the queue (seen in tests).
      await ch.checkQueue(queue);
      const verb = args.command === 'replay' ? 'replayed' : 'purged';
      print(
        args.json
          ? { queue, [verb]: done }
          : `${verb} ${done} message(s) from ${queue}${args.command === 'replay' ? ` to ${isDatabaseOwner(args.queue) ? consumerQueueOf(args.queue) : config.EVENTS_EXCHANGE}` : ''}`,
      );
    }
    await ch.close();
  } finally {
    await conn.close();
  }
}

// Run when started (directly, or as `saga dlq`, which sets argv[1] to the component); not when a test imports it.
if (require.main === module || process.argv[1] === 'dlq') {
  answerArgs(USAGE);
  const args = parseDlqArgs(process.argv.slice(2));
  if ('error' in args) {
    // Unreachable after answerArgs (it refuses what parseDlqArgs refuses), kept for the type.
    console.error(args.error);
    process.exit(2);
  }
  main(args).catch((err) => {
    console.error(`dlq failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
