import { EventEmitter } from 'node:events';
import type { ChannelModel } from 'amqplib';
import { BaseEnv, ConfigError, parseEnv } from '../../src/runtime/config';
import {
  brokerAddresses,
  brokerConnector,
  CONNECT_TIMEOUT_MS,
  SINGLE_CONNECT_TIMEOUT_MS,
  vhostOf,
} from '../../src/messaging/broker';
import { StoppingError } from '../../src/runtime/settle';

const A = 'amqp://u:secret@rmq-0:5672/v';
const B = 'amqp://u:secret@rmq-1:5672/v';
const C = 'amqp://u:secret@rmq-2:5672/v';

/** A fake amqplib connect: the nodes in `down` refuse; records every address tried, in order, with its options. */
function nodes(down: Set<string>) {
  const tried: { address: string; options: Record<string, unknown> }[] = [];
  const open = async (address: string, options: Record<string, unknown>) => {
    tried.push({ address, options });
    if (down.has(address))
      throw Object.assign(new Error(`connect ECONNREFUSED ${new URL(address).host}`), { code: 'ECONNREFUSED' });
    return {} as ChannelModel;
  };
  return { tried, open, order: () => tried.map((t) => new URL(t.address).hostname) };
}

describe('RABBITMQ_URL with several nodes', () => {
  it('accepts one URL or a comma-separated list of amqp URLs, and refuses anything else naming the variable', () => {
    expect(parseEnv(BaseEnv, { RABBITMQ_URL: A }).RABBITMQ_URL).toBe(A);
    expect(brokerAddresses(parseEnv(BaseEnv, { RABBITMQ_URL: `${A}, ${B},${C}` }).RABBITMQ_URL)).toEqual([A, B, C]);
    for (const bad of [`${A},http://h:15672`, `${A},not a url`, ',']) {
      expect(() => parseEnv(BaseEnv, { RABBITMQ_URL: bad })).toThrow(ConfigError);
      try {
        parseEnv(BaseEnv, { RABBITMQ_URL: bad });
      } catch (err) {
        expect((err as ConfigError).issues.map((i) => i.variable)).toEqual(['RABBITMQ_URL']);
      }
    }
  });

  it('names the vhost of the addresses', () => {
    expect(vhostOf(`${A},${B}`)).toBe('v');
    expect(vhostOf('amqp://h:5672')).toBe('/');
  });

  it('connects to the first node first, and after a connection the next session starts with the next node', async () => {
    const n = nodes(new Set());
    const broker = brokerConnector(`${A},${B},${C}`, n.open);
    for (let i = 0; i < 4; i++) await broker.connect();
    expect(n.order()).toEqual(['rmq-0', 'rmq-1', 'rmq-2', 'rmq-0']);
  });

  it('skips a node that refuses and stays in the list order after it', async () => {
    const n = nodes(new Set([A]));
    const broker = brokerConnector(`${A},${B},${C}`, n.open);
    const conn = await broker.connect();
    expect(conn.brokerAddress).toBe('amqp://u:***@rmq-1:5672/v');
    await broker.connect();
    expect(n.order()).toEqual(['rmq-0', 'rmq-1', 'rmq-2']);
  });

  it('fails naming every node and its reason, without the password, when none accepts', async () => {
    const n = nodes(new Set([A, B]));
    const broker = brokerConnector(`${A},${B}`, n.open);
    const err = await broker.connect().catch((e: Error) => e);
    expect(String(err)).toMatch(/rmq-0:5672.*ECONNREFUSED.*rmq-1:5672.*ECONNREFUSED/);
    expect(String(err)).not.toContain('secret');
  });

  it('bounds each attempt with a connect timeout, shorter when there is another node to try', async () => {
    const n = nodes(new Set());
    await brokerConnector(`${A},${B}`, n.open).connect({ clientProperties: { connection_name: 'x' } });
    await brokerConnector(A, n.open).connect({ clientProperties: { connection_name: 'x' } });
    expect(n.tried.map((t) => t.options.timeout)).toEqual([CONNECT_TIMEOUT_MS, SINGLE_CONNECT_TIMEOUT_MS]);
    expect(n.tried[0]!.options.clientProperties).toEqual({ connection_name: 'x' });
  });

  it("with a single URL rethrows amqplib's own error unchanged", async () => {
    const n = nodes(new Set([A]));
    const err = await brokerConnector(A, n.open)
      .connect()
      .catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ECONNREFUSED');
  });

  it('a stop rejects a connect in progress at once, and a connection that opens after it is closed', async () => {
    let opened!: (c: ChannelModel) => void;
    const late = new Promise<ChannelModel>((r) => (opened = r));
    let closes = 0;
    const conn: ChannelModel = Object.assign(new EventEmitter(), {
      close: async () => {
        closes++;
        conn.emit('close');
      },
    }) as unknown as ChannelModel;
    const abort = new AbortController();
    const connecting = brokerConnector(A, () => late).connect({}, abort.signal);
    abort.abort();
    await expect(connecting).rejects.toBeInstanceOf(StoppingError);
    opened(conn);
    await waitFor(() => closes === 1);
    // A reset while that connection closes is not an uncaught error.
    expect(() => conn.emit('error', new Error('read ECONNRESET'))).not.toThrow();
    await expect(brokerConnector(A, () => late).connect({}, abort.signal)).rejects.toBeInstanceOf(StoppingError);
  });

  it("a stop during one node's connect tries no further node", async () => {
    const tried: string[] = [];
    const abort = new AbortController();
    const connecting = brokerConnector(`${A},${B}`, async (address) => {
      tried.push(new URL(address).hostname);
      abort.abort();
      throw new Error('connect ETIMEDOUT');
    }).connect({}, abort.signal);
    await expect(connecting).rejects.toBeInstanceOf(StoppingError);
    await new Promise((r) => setImmediate(r)); // every microtask of the connect's loop has run
    expect(tried).toEqual(['rmq-0']);
  });
});

async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}
