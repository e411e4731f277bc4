/**
 * Production shape under load, with batching in place: two replicas of every service consuming the same queues,
 * two relays on the same slots (one active, one standing by). Mid-run the active relay and one replica of every
 * service are killed with SIGKILL. Every order must end final, no history may show an event applied twice, and
 * stock and balances must add up.
 */
import { SERVICES, type ServiceName } from '@saga/common/contracts/service-names';
import { createTestEnv, type TestEnv } from '../support/env';
import { metricValue } from '../support/metrics';
import { killAll, type Running } from '../support/process';
import { sagaClient } from '../support/saga';
import { startRelayProc, startService, waitRelayStreaming, type ServiceProc } from '../support/stack';
import { waitUntil } from '../support/wait';

let env: TestEnv;
const replicas = {} as Record<ServiceName, ServiceProc[]>;
let relays: Running[] = [];
let turn = 0;
/** A live replica of each service, a different one on each call. */
const urls = () => {
  const pick = (s: ServiceName) => {
    const live = replicas[s].filter((r) => r.proc.child.exitCode === null && r.proc.child.signalCode === null);
    return live[turn++ % live.length]!.url;
  };
  return { order: pick('order'), inventory: pick('inventory'), payment: pick('payment') };
};
const saga = sagaClient(urls);
// Small retry delays and prefetch windows large enough that batches form under load.
const serviceExtra = { CONSUMER_RETRY_BASE_MS: '50', CONSUMER_PREFETCH: '64' };

beforeAll(async () => {
  env = await createTestEnv('replicas');
  const active = startRelayProc(env);
  await waitRelayStreaming(active);
  const standby = startRelayProc(env);
  await standby.waitForLog((l) => l.msg === 'slot is streamed by another relay; standing by', 30_000);
  relays = [active, standby];
  for (const s of SERVICES)
    replicas[s] = await Promise.all([startService(env, s, serviceExtra), startService(env, s, serviceExtra)]);
});
afterAll(async () => {
  await killAll();
  await env?.close();
});

describe('two replicas of each service and two relays under load', () => {
  it('keeps every order final and applied once when the active relay and one replica of each service are killed', async () => {
    const n = 300;
    const sku = await saga.product(Math.floor(n * 0.8), 100, 'rep');
    const rich = await saga.account(200 * n);
    const poor = await saga.account(150);
    const burst = saga.burst(n, sku, rich, poor, 16);

    await waitUntil(() => burst.placed() >= n / 3, { timeoutMs: 60_000, message: 'a third of the orders placed' });
    const [active, standby] = relays as [Running, Running];
    await Promise.all([active.kill('SIGKILL'), ...SERVICES.map((s) => replicas[s][0]!.proc.kill('SIGKILL'))]);
    await waitRelayStreaming(standby);
    await burst.done;

    const views = await saga.expectInvariants(120_000);
    expect(views).toHaveLength(n);
    expect(views.filter((v) => v.status === 'CONFIRMED').length).toBeGreaterThan(0);
    expect(views.filter((v) => v.reason === 'OUT_OF_STOCK' || v.reason === 'PAYMENT_DECLINED').length).toBeGreaterThan(
      0,
    );

    // Batching was in play: the surviving replicas applied more messages than they ran batches.
    let messages = 0;
    let batches = 0;
    for (const s of SERVICES) {
      const url = replicas[s][1]!.adminUrl;
      messages += await metricValue(url, 'consumer_batch_size_sum');
      batches += await metricValue(url, 'consumer_batch_size_count');
    }
    expect(batches).toBeGreaterThan(0);
    expect(messages).toBeGreaterThan(batches);
  });
});
