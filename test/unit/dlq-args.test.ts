import { parseDlqArgs } from '../../scripts/dlq';

describe('dlq arguments', () => {
  it('takes a command, a queue, an optional message id and flags in any order', () => {
    expect(parseDlqArgs(['list', 'order', '--json', '--limit', '5'])).toEqual({
      command: 'list',
      queue: 'order',
      messageId: undefined,
      json: true,
      yes: false,
      limit: 5,
    });
    expect(parseDlqArgs(['--yes', 'purge', 'unroutable', '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11'])).toMatchObject({
      command: 'purge',
      queue: 'unroutable',
      messageId: '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11',
      yes: true,
    });
    expect(parseDlqArgs(['show', 'invalid', '--limit=2'])).toMatchObject({
      command: 'show',
      queue: 'invalid',
      limit: 2,
    });
  });
  it('says what is wrong', () => {
    expect(parseDlqArgs([])).toEqual({ error: 'the command is one of list|show|replay|purge' });
    expect(parseDlqArgs(['list', 'shipping'])).toEqual({
      error: 'the queue is one of order|inventory|payment|monitor|unroutable|invalid',
    });
    expect(parseDlqArgs(['list', 'order', '--limit', '0'])).toEqual({
      error: '--limit needs a positive whole number, got 0',
    });
    expect(parseDlqArgs(['show', 'order', 'not-a-uuid'])).toEqual({ error: 'not-a-uuid is not a message id (a uuid)' });
    expect(parseDlqArgs(['list', 'order', '--all'])).toEqual({ error: 'unknown argument --all' });
  });
  it('refuses to replay invalid rows: no fix makes them valid', () => {
    expect(parseDlqArgs(['replay', 'invalid'])).toEqual({
      error: 'invalid rows cannot be replayed: fix the producer, then purge them',
    });
  });
});
