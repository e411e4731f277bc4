/** The restart decision after a failed session, keyed on SQLSTATE: a table of errors and what each gets. */
import { restartDecision, type RestartKind } from '../../src/restart-policy';
import { BrokerRefusalError } from '../../src/outbound';
import { SlotLostError, SlotMissingError } from '../../src/slots';

const pgError = (code: string) => Object.assign(new Error(`pg error ${code}`), { code, severity: 'ERROR' });
const times = { baseMs: 100, capMs: 10_000, standbyPollMs: 1000, random: () => 1 };

describe('restart decision', () => {
  it.each<[string, unknown, RestartKind, number]>([
    ['slot streamed by another relay (55006)', pgError('55006'), 'standby', 1000],
    ['slot dropped before START_REPLICATION (42704)', pgError('42704'), 'slot', 10_000],
    ['slot missing', new SlotMissingError('gone', new Date()), 'slot', 10_000],
    ['slot lost', new SlotLostError('lost', undefined), 'slot', 10_000],
    ['wrong password (28P01)', pgError('28P01'), 'misconfigured', 10_000],
    ['no privilege (42501)', pgError('42501'), 'misconfigured', 10_000],
    ['marker table missing (42P01)', pgError('42P01'), 'misconfigured', 10_000],
    ['server shutting down (57P01)', pgError('57P01'), 'transient', 100],
    ['server starting (57P03)', pgError('57P03'), 'transient', 100],
    ['broker refused a message', new BrokerRefusalError('406', { code: 406, text: 'x' }, 'id'), 'transient', 100],
    ['anything else', new Error('socket hang up'), 'retry', 100],
  ])('%s', (_name, err, kind, delayMs) => {
    expect(restartDecision(err, 0, times)).toEqual({ kind, delayMs });
  });

  it('backs off exponentially up to the cap for what may pass', () => {
    const delays = [0, 1, 2, 3, 10].map((a) => restartDecision(new Error('x'), a, times).delayMs);
    expect(delays).toEqual([100, 200, 400, 800, 10_000]);
  });

  it('finds the SQLSTATE on a wrapped cause', () => {
    const wrapped = new Error('session failed', { cause: pgError('55006') });
    expect(restartDecision(wrapped, 3, times).kind).toBe('standby');
  });
});
