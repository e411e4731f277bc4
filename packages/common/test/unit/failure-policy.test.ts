/** The consumer's failure policy: which failure holds a message, retries it, or dead-letters it, and after how long. */
import { z } from 'zod';
import { UnknownEventError } from '../../src/contracts/catalog';
import { InvalidMessageError } from '../../src/messaging/errors';
import { attemptsSpent, decideFailure, type FailureDecision } from '../../src/messaging/failure-policy';

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

  it('reads the attempts a message spent from its retry header', () => {
    expect(attemptsSpent(undefined)).toBe(0);
    expect(attemptsSpent({ 'x-attempt': 3 })).toBe(3);
  });
});
