/**
 * No dual write: a service never publishes to RabbitMQ itself; its events leave only through the outbox and the relay.
 * The only sends in shared consumer code go to the consumer's own retry and dead-letter queues.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });

const PUBLISH = /\.(publish|sendToQueue)\s*\(|createChannel|createConfirmChannel|from 'amqplib'/;

describe('no dual write', () => {
  const serviceFiles = ['order', 'inventory', 'payment'].flatMap((s) => files(path.join(ROOT, 'services', s, 'src')));

  it('finds the service sources it checks', () => {
    expect(serviceFiles.length).toBeGreaterThan(10);
    expect(serviceFiles.some((f) => f.endsWith(path.join('order', 'src', 'http', 'routes.ts')))).toBe(true);
  });

  it('no service source touches the broker API', () => {
    const offenders = serviceFiles
      .filter((f) => PUBLISH.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(ROOT, f));
    expect(offenders).toEqual([]);
  });

  it('the saga monitor consumes but never publishes', () => {
    const monitorFiles = files(path.join(ROOT, 'services', 'monitor', 'src'));
    expect(monitorFiles.length).toBeGreaterThan(5);
    expect(
      monitorFiles
        .filter((f) => /\.(publish|sendToQueue)\s*\(/.test(readFileSync(f, 'utf8')))
        .map((f) => path.relative(ROOT, f)),
    ).toEqual([]);
  });

  it('would notice a service that publishes', () => {
    expect(PUBLISH.test("channel.publish('saga.events', 'order.OrderPlaced', buf)")).toBe(true);
    expect(PUBLISH.test("import amqp from 'amqplib'")).toBe(true);
  });

  it('shared consumer code sends only to its own retry and dead-letter queues, and reports what it dead-letters', () => {
    // Every part of the consumer (session, pump, batch runner, parking of failed messages).
    const dir = path.join(ROOT, 'packages/common/src/messaging');
    const src = readdirSync(dir)
      .filter((f) => /^(consumer|batch-|failure-|parking)/.test(f))
      .map((f) => readFileSync(path.join(dir, f), 'utf8'))
      .join('\n');
    // Every copy goes through one bounded send(channel, <queue>, …) of the batch runner.
    expect([...src.matchAll(/sendConfirmed\(\s*\w+,\s*([\w.]+)/g)].map((m) => m[1])).toEqual(['to']);
    const sends = new Set([...src.matchAll(/\bsend\(\s*\w+,\s*([\w.]+)/g)].map((m) => m[1]));
    expect([...sends].sort()).toEqual(['names.dlq', 'names.retry']);
    // One publish: the copy of a dead-lettered message for observers (the saga monitor), never an event.
    expect([...src.matchAll(/\.publish\s*\(\s*([^,]+),/g)].map((m) => m[1]!.trim())).toEqual([
      'topologyNames(opts.exchange).deadLetterReports',
    ]);
  });
});
