/** The reconcile command's arguments: what it accepts, and a reason naming the argument for what it refuses. */
import { parseReconcileArgs } from '../../src/reconcile';

const SOURCES = ['order', 'inventory', 'payment'];

describe('reconcile arguments', () => {
  it('takes a source and a time window, with or without =', () => {
    expect(parseReconcileArgs(['--source', 'order', '--since', '2026-11-27T10:15:00Z'], SOURCES)).toEqual({
      source: 'order',
      since: new Date('2026-11-27T10:15:00Z'),
    });
    expect(
      parseReconcileArgs(
        ['--source=payment', '--since=2026-11-27T11:15:00.5+01:00', '--until=2026-11-27T10:20:00Z'],
        SOURCES,
      ),
    ).toEqual({
      source: 'payment',
      since: new Date('2026-11-27T10:15:00.500Z'),
      until: new Date('2026-11-27T10:20:00Z'),
    });
  });

  it.each([
    [['--since', '2026-11-27T10:15:00Z'], /--source is required/],
    [['--source', 'billing', '--since', '2026-11-27T10:15:00Z'], /--source: unknown source billing/],
    [['--source', 'order'], /--since is required/],
    [['--source', 'order', '--since', '2026-11-27 10:15'], /--since: expected an ISO 8601 time with its zone/],
    [['--source', 'order', '--since', '2026-11-27T10:15:00'], /--since: expected an ISO 8601 time with its zone/],
    [
      ['--source', 'order', '--since', '2026-11-27T10:15:00Z', '--until', '2026-11-27T10:00:00Z'],
      /--until must be after --since/,
    ],
    [['--source', 'order', '--since'], /--since needs a value/],
    [['--source', 'order', '--since', '2026-11-27T10:15:00Z', '--dry-run'], /unknown argument: --dry-run/],
  ])('refuses %j', (args, reason) => {
    expect(parseReconcileArgs(args, SOURCES)).toMatch(reason);
  });
});
