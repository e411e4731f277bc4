import { redactUrl } from '../../src/runtime/logger';

describe('redactUrl: no password reaches a log line', () => {
  it.each([
    ['postgres://order_svc:s3cret@db:5432/orders', 'postgres://order_svc:***@db:5432/orders'],
    [
      'postgresql://order_svc:s3cret@/orders?host=/var/run/postgresql',
      'postgresql://order_svc:***@/orders?host=/var/run/postgresql',
    ],
    [
      'postgresql://:s3cret@/orders?host=%2Fvar%2Frun%2Fpostgresql',
      'postgresql://:***@/orders?host=%2Fvar%2Frun%2Fpostgresql',
    ],
    [
      'postgres://order_svc@db/orders?password=s3cret&sslmode=require',
      'postgres://order_svc@db/orders?password=***&sslmode=require',
    ],
    ['postgresql:///orders?host=/var/run/postgresql', 'postgresql:///orders?host=/var/run/postgresql'],
    ['amqp://saga:s3cret@rabbitmq:5672', 'amqp://saga:***@rabbitmq:5672'],
  ])('%s', (url, expected) => {
    const shown = redactUrl(url);
    expect(shown).toBe(expected);
    expect(shown).not.toContain('s3cret');
  });

  it('says so instead of echoing what it cannot read', () => {
    expect(redactUrl('s3cret and no url')).toBe('[unparseable url]');
  });
});
