import { brokerUser, publisherTrust, untrustedReason } from '../../src/messaging/publisher-trust';

const fromExchange = (userId?: string) => ({ properties: { userId }, fields: { exchange: 'saga.events' } });
const direct = (userId?: string) => ({ properties: { userId }, fields: { exchange: '' } });

describe('publisher trust', () => {
  const strict = publisherTrust({
    url: 'amqp://payment:secret@rmq:5672/prod',
    exchange: 'saga.events',
    publishers: 'relay, debezium',
  });

  it('accepts events signed by a listed publisher', () => {
    expect(untrustedReason(fromExchange('relay'), strict)).toBeUndefined();
    expect(untrustedReason(fromExchange('debezium'), strict)).toBeUndefined();
  });

  it('accepts what the consumer parked in its own retry queue', () => {
    expect(untrustedReason(direct('payment'), strict)).toBeUndefined();
  });

  it('refuses events signed by another component', () => {
    expect(untrustedReason(direct('order'), strict)).toBe('user-id "order" is not a trusted publisher');
    expect(untrustedReason(fromExchange('inventory'), strict)).toMatch(/not a trusted publisher/);
  });

  it('refuses unsigned events once publishers are listed, wherever they come from', () => {
    expect(untrustedReason(direct(), strict)).toMatch(/no user-id/);
    expect(untrustedReason(fromExchange(), strict)).toMatch(/no user-id/);
    expect(untrustedReason(fromExchange(''), strict)).toMatch(/no user-id/);
  });

  it('accepts unsigned events from the exchange only when told to (Debezium sets no user-id)', () => {
    const swap = publisherTrust({
      url: 'amqp://payment:x@rmq/prod',
      exchange: 'saga.events',
      publishers: 'relay',
      unsignedViaExchange: true,
    });
    expect(untrustedReason(fromExchange(), swap)).toBeUndefined();
    expect(untrustedReason(direct(), swap)).toMatch(/no user-id/);
    expect(untrustedReason(direct('order'), swap)).toMatch(/not a trusted publisher/);
  });

  it('trusts the shared user, and unsigned events from the exchange, when no publishers are configured', () => {
    const local = publisherTrust({ url: 'amqp://guest:guest@127.0.0.1:5672', exchange: 'saga.events' });
    expect([...local.publishers]).toEqual(['guest']);
    expect(untrustedReason(fromExchange('guest'), local)).toBeUndefined();
    expect(untrustedReason(fromExchange(), local)).toBeUndefined();
    expect(untrustedReason(direct(), local)).toMatch(/no user-id/);
    expect(untrustedReason(direct('someone'), local)).toMatch(/not a trusted publisher/);
  });

  it('reads the user name from the first address, percent-decoded, guest when absent', () => {
    expect(brokerUser('amqp://a%40b:pw@h1:5672/v,amqp://a%40b:pw@h2:5672/v')).toBe('a@b');
    expect(brokerUser('amqp://h1:5672')).toBe('guest');
  });
});
