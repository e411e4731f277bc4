/** The consumer's failure policy: which failure holds a message, retries it, or dead-letters it, and after how long. */
import { z } from 'zod';
import { UnknownEventError } from '../../src/contracts/catalog';
import { InvalidMessageError } from '../../src/messaging/errors';
import { decideFailure, type FailureDecision } from '../../src/messaging/failure-policy';

const pgError = (code: string) => Object.assign(new Error('db says no'), { code });
/** drizzle wraps driver errors this way (DrizzleQueryError). */
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: select 1'), { cause });
const policy = { maxAttempts: 5, retryBaseMs: 500 };

describe('consumer failure policy', () => {
  const table: [string, unknown, number, FailureDecision][] = [
    [
      'a schema violation',
      z.object({ a: z.string() }).safeParse({}).error,
      1,
      { kind: 'dead-letter', attempt: 1, reason: 'invalid' },
    ],
    ['an invalid message', new InvalidMessageError('bad'), 1, { kind: 'dead-letter', attempt: 1, reason: 'invalid' }],
    ['an unknown event', new UnknownEventError('X', 1), 3, { kind: 'dead-letter', attempt: 3, reason: 'invalid' }],
    [
      'a check violation behind drizzle',
      wrapped(pgError('23514')),
      1,
      { kind: 'dead-letter', attempt: 1, reason: 'invalid' },
    ],
    ['a deadlock, first try', wrapped(pgError('40P01')), 1, { kind: 'retry', attempt: 1, delayMs: 500 }],
    ['a serialization failure, third try', pgError('40001'), 3, { kind: 'retry', attempt: 3, delayMs: 2000 }],
    [
      'an unknown error, last try',
      new Error('boom'),
      5,
      { kind: 'dead-letter', attempt: 5, reason: 'retries-exhausted' },
    ],
    [
      'a refused connection',
      wrapped(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })),
      9,
      { kind: 'hold' },
    ],
    ['an admin shutdown', pgError('57P01'), 1, { kind: 'hold' }],
  ];
  it.each(table)('%s', (_name, err, attempt, expected) => {
    expect(decideFailure(err, attempt, policy)).toEqual(expected);
  });

  const environment: [string, string][] = [
    ['53300', 'too many connections'],
    ['53100', 'disk full'],
    ['53200', 'out of memory'],
    ['25006', 'read-only transaction (a standby after a failover)'],
    ['28P01', 'password refused (rotated)'],
    ['28000', 'authorization refused'],
    ['3D000', 'database missing'],
    ['42P01', 'table missing (before migrations)'],
    ['42703', 'column missing (before migrations)'],
    ['57014', 'statement timeout'],
    ['55P03', 'lock timeout'],
    ['57P01', 'admin shutdown'],
    ['57P03', 'cannot connect now'],
    ['08006', 'connection failure'],
  ];
  it.each(environment)('holds %s (%s) on any attempt, spending none', (code) => {
    for (const attempt of [1, 5, 50]) {
      expect(decideFailure(pgError(code), attempt, policy)).toEqual({ kind: 'hold' });
      expect(decideFailure(wrapped(pgError(code)), attempt, policy)).toEqual({ kind: 'hold' });
    }
  });

  it('holds on a client-side query deadline', () => {
    expect(decideFailure(new Error('Query read timeout'), 5, policy)).toEqual({ kind: 'hold' });
  });
});
