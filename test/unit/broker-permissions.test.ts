import { componentUsers, permissionsFor } from '../../scripts/lib/broker-users';

const allows = (regex: string, name: string) => new RegExp(regex).test(name);

describe('broker permissions per component', () => {
  it('lets the relay write the events exchange and the invalid queue, and read no service queue', () => {
    const p = permissionsFor('relay', 'saga.events');
    expect(allows(p.write, 'saga.events')).toBe(true);
    expect(allows(p.write, 'amq.default')).toBe(true); // the invalid queue is written through the default exchange
    expect(allows(p.read, 'payment.events')).toBe(false);
    expect(allows(p.configure, 'payment.events')).toBe(false);
  });

  it('lets a service read its own queues and park its retries, but not publish events', () => {
    const p = permissionsFor('payment', 'saga.events');
    for (const q of ['payment.events', 'payment.events.backoff', 'payment.events.dlq']) {
      expect(allows(p.read, q)).toBe(true);
      expect(allows(p.configure, q)).toBe(true);
    }
    expect(allows(p.write, 'amq.default')).toBe(true);
    expect(allows(p.write, 'saga.events.dead-letters')).toBe(true);
    expect(allows(p.write, 'saga.events')).toBe(false);
    expect(allows(p.read, 'inventory.events')).toBe(false);
    expect(allows(p.configure, 'inventory.events')).toBe(false);
  });

  it('anchors every pattern: a name that only contains an allowed one is refused', () => {
    const p = permissionsFor('order', 'saga.events');
    expect(allows(p.read, 'order.events')).toBe(true);
    expect(allows(p.read, 'xorder.events')).toBe(false);
    expect(allows(p.read, 'order.events.other')).toBe(false);
    expect(allows(p.read, 'orderXevents')).toBe(false); // dots are literal
  });

  it('lets the monitor read the dead-letter reports too', () => {
    const p = permissionsFor('monitor', 'saga.events');
    expect(allows(p.read, 'monitor.dead-letter-reports')).toBe(true);
    expect(allows(p.read, 'saga.events.dead-letters')).toBe(true);
    expect(allows(p.read, 'monitor.events')).toBe(true);
  });

  it('wants all component passwords or none', () => {
    const base = { RABBITMQ_URL: 'amqp://a:b@h', EVENTS_EXCHANGE: 'saga.events' };
    expect(componentUsers(base)).toBeUndefined();
    expect(() => componentUsers({ ...base, ORDER_RABBITMQ_PASSWORD: 'x' })).toThrow(/RELAY_RABBITMQ_PASSWORD/);
    const all = Object.fromEntries(
      ['RELAY', 'ORDER', 'INVENTORY', 'PAYMENT', 'MONITOR'].map((c) => [`${c}_RABBITMQ_PASSWORD`, `pw-${c}`]),
    );
    expect(componentUsers({ ...base, ...all, ORDER_RABBITMQ_USER: 'shop' })?.map((u) => u.user)).toEqual([
      'relay',
      'shop',
      'inventory',
      'payment',
      'monitor',
    ]);
  });
});
