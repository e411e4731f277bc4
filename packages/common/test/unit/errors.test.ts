import { z } from 'zod';
import { UnknownEventError } from '../../src/contracts/catalog';
import { classifyError, InvalidMessageError } from '../../src/messaging/errors';
import { isConnectionError, isPgError } from '../../src/db/pg';

const pgError = (code: string) => Object.assign(new Error('db says no'), { code });
/** drizzle wraps driver errors this way (DrizzleQueryError). */
const wrapped = (cause: unknown) => Object.assign(new Error('Failed query: select 1'), { cause });

describe('classifying consumer failures', () => {
  it('dead-letters what can never pass', () => {
    expect(classifyError(z.object({ a: z.string() }).safeParse({}).error)).toBe('dead-letter');
    expect(classifyError(new InvalidMessageError('bad'))).toBe('dead-letter');
    expect(classifyError(new UnknownEventError('X', 1))).toBe('dead-letter');
    expect(classifyError(wrapped(pgError('23514')))).toBe('dead-letter'); // check_violation, behind drizzle
  });
  it('retries what may pass later', () => {
    expect(classifyError(wrapped(pgError('40P01')))).toBe('retry');
    expect(classifyError(new Error('something else'))).toBe('retry');
  });
  it('holds what the environment causes', () => {
    expect(classifyError(wrapped(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))).toBe(
      'hold',
    );
    expect(classifyError(new Error('Query read timeout'))).toBe('hold');
  });
});

describe('recognising database errors behind wrappers', () => {
  it('finds the SQLSTATE in the cause chain', () => {
    expect(isPgError(wrapped(pgError('23505')), '23505')).toBe(true);
    expect(isPgError(wrapped(pgError('23505')), '40001')).toBe(false);
    expect(isPgError(new Error('no code'))).toBe(false);
  });
  it('knows an unreachable database', () => {
    expect(isConnectionError(wrapped(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })))).toBe(true);
    expect(isConnectionError(wrapped(pgError('57P01')))).toBe(true);
    expect(isConnectionError(wrapped(pgError('23505')))).toBe(false);
  });
});
