/**
 * A slot lost while the relay is down is never recreated silently, by migrate or by the relay: the source database
 * remembers that the slot existed (the slot marker), the relay reports the loss with the time to reconcile from and
 * stays not ready, and one operator command (recover) brings the slot back and republishes the missed rows.
 */
import { collect } from '../../../test/support/amqp';
import { metricValue } from '../../../test/support/metrics';
import { writeOutbox } from '../../../test/support/outbox-writer';
import { startProcess } from '../../../test/support/process';
import { startRelayProc, waitRelayStreaming } from '../../../test/support/stack';
import { waitUntil } from '../../../test/support/wait';
import { useRelayTestEnv } from '../support/relay-test-env';

const t = useRelayTestEnv('slotloss');
const { running, admin, migrateSlots } = t;

describe('a slot lost while the relay is down', () => {
  it.each([['false'], ['true']])(
    'is not recreated by migrate or by the relay (RELAY_CREATE_SLOT=%s); the relay is not ready until the recover command, after which every row written meanwhile arrives',
    async (createSlot) => {
      const prefix = `${t.env.slotPrefix}_${createSlot === 'true' ? 'c' : 'n'}`;
      const port = createSlot === 'true' ? 18341 : 18342;
      const base = `http://127.0.0.1:${port}`;
      const relayEnv = { RELAY_SLOT_PREFIX: prefix, RELAY_CREATE_SLOT: createSlot, RELAY_PORT: String(port) };
      const start = () => {
        const r = startRelayProc(t.env, { RELAY_RETRY_MAX_MS: '500', ...relayEnv });
        running.push(r);
        return r;
      };
      await migrateSlots(prefix);
      const sink = await collect(t.env.rabbitUrl, t.env.exchange);
      const tag = `sl${createSlot[0]}`;
      const first = start();
      await waitRelayStreaming(first);
      const before = await writeOutbox(t.env.serviceUrl('order'), { rows: 10, prefix: `${tag}-a` });
      await waitUntil(() => before.every((w) => sink.messages.some((m) => m.id === w.id)), { message: 'rows before' });
      expect((await first.kill('SIGTERM')).code).toBe(0);

      // The slot is dropped while the relay is down; rows are written; the deploy runs migrate, then the relay.
      const slot = `${prefix}_order`;
      await admin('SELECT pg_drop_replication_slot($1)', [slot]);
      const lost = await writeOutbox(t.env.serviceUrl('order'), { rows: 50, prefix: `${tag}-b` });
      const said = await migrateSlots(prefix);
      expect(said.some((m) => m.includes(`not creating ${slot}`))).toBe(true);
      expect(await admin('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toHaveLength(0);

      const relay = start();
      const reported = await relay.waitForLog(
        (l) => String(l.msg).startsWith('replication slot disappeared') && l.source === 'order',
      );
      const from = Date.parse(String(reported.lastAcknowledgedCommitTime));
      expect(from).toBeGreaterThan(Date.now() - 120_000);
      expect(from).toBeLessThanOrEqual(Date.now());
      expect(await waitUntil(() => metricValue(base, 'relay_slot_missing', { source: 'order' }).catch(() => 0))).toBe(
        1,
      );
      // The metric also gives the point to reconcile from.
      expect(
        await metricValue(base, 'relay_acknowledged_commit_timestamp_seconds', { source: 'order' }),
      ).toBeGreaterThan(0);
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      // The relay keeps trying and still does not create it.
      await waitUntil(
        () =>
          relay.logs.filter((l) => String(l.msg).startsWith('replication slot disappeared') && l.source === 'order')
            .length >= 2,
        { message: 'loss reported again' },
      );
      expect(await admin('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toHaveLength(0);
      expect(lost.some((w) => sink.messages.some((m) => m.id === w.id))).toBe(false);

      // The operator's one command: creates the slot, reconciles from the stored time.
      const recover = startProcess('cdc-relay/src/main.ts', { ...t.env.env, ...relayEnv }, [
        'recover',
        '--source',
        'order',
      ]);
      running.push(recover);
      const exit = await recover.exited;
      expect({ exit, output: exit.code === 0 ? '' : recover.output() }).toEqual({
        exit: { code: 0, signal: null },
        output: '',
      });
      await waitUntil(() => lost.every((w) => sink.messages.some((m) => m.id === w.id)), {
        message: 'rows written while the slot was gone',
      });
      await waitRelayStreaming(relay);
      await waitUntil(async () => (await fetch(`${base}/readyz`)).status === 200, { message: 'ready after recovery' });
      expect(await metricValue(base, 'relay_slot_missing', { source: 'order' })).toBe(0);
      const after = await writeOutbox(t.env.serviceUrl('order'), { rows: 5, prefix: `${tag}-c` });
      await waitUntil(() => after.every((w) => sink.messages.some((m) => m.id === w.id)), { message: 'rows after' });
      await sink.close();
    },
    90_000,
  );

  it('recover refuses when outbox retention no longer covers the window to reconcile', async () => {
    const prefix = `${t.env.slotPrefix}_r`;
    await migrateSlots(prefix);
    const slot = `${prefix}_order`;
    await admin('SELECT pg_drop_replication_slot($1)', [slot]);
    // The last acknowledged commit is older than the retention window: rows after it may be pruned already.
    await admin(
      `UPDATE cdc_relay.slot_marker SET acked_commit_time = now() - interval '3 hours' WHERE slot_name = $1`,
      [slot],
    );
    const recover = startProcess(
      'cdc-relay/src/main.ts',
      { ...t.env.env, RELAY_SLOT_PREFIX: prefix, OUTBOX_RETENTION_HOURS: '2' },
      ['recover', '--source', 'order'],
    );
    running.push(recover);
    expect((await recover.exited).code).toBe(1);
    expect(recover.output()).toMatch(/retention/);
    expect(await admin('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toHaveLength(0);
  });
});
