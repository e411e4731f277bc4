import { specFor } from '@saga/common/domain/decider';
import { paymentDecider, type Payments } from '../../src/domain/payment';

const orderId = '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11';
const data = { orderId, customerId: 'c1', amountCents: 5000, paymentId: '0b6a9c1e-1f1d-4f55-8f0e-0e3f4b7e2d11' };
const LIMIT = 100_000;
const cmd = (over: Partial<typeof data> = {}) =>
  ({ type: 'AuthorizePayment', ...data, limitCents: LIMIT, ...over }) as const;
const spec = specFor(paymentDecider);
const account = (balanceCents: number): Payments => ({
  accounts: new Map([['c1', { customerId: 'c1', balanceCents }]]),
  payments: new Map(),
});

describe('authorize payment', () => {
  it('authorizes when the balance covers the amount within the limit, and debits it', () => {
    const { events, state } = spec.given(account(5000)).when(cmd());
    expect(events).toEqual([{ type: 'PaymentAuthorized', data }]);
    expect(state.accounts.get('c1')!.balanceCents).toBe(0);
    expect(state.payments.get(orderId)).toMatchObject({ status: 'AUTHORIZED', reason: null, amountCents: 5000 });
  });
  it('declines an unknown customer', () => {
    expect(spec.given({ accounts: new Map(), payments: new Map() }).when(cmd()).events).toEqual([
      { type: 'PaymentDeclined', data: { ...data, reason: 'UNKNOWN_CUSTOMER' } },
    ]);
  });
  it('declines insufficient funds and leaves the balance alone', () => {
    const { events, state } = spec.given(account(4999)).when(cmd());
    expect(events).toMatchObject([{ type: 'PaymentDeclined', data: { reason: 'INSUFFICIENT_FUNDS' } }]);
    expect(state.accounts.get('c1')!.balanceCents).toBe(4999);
    expect(state.payments.get(orderId)).toMatchObject({ status: 'DECLINED', reason: 'INSUFFICIENT_FUNDS' });
  });
  it('declines over the per-payment limit even when the balance would cover it', () => {
    expect(spec.given(account(10_000_000)).when(cmd({ amountCents: LIMIT + 1 })).events).toMatchObject([
      { type: 'PaymentDeclined', data: { reason: 'LIMIT_EXCEEDED' } },
    ]);
    expect(spec.given(account(10_000_000)).when(cmd({ amountCents: LIMIT })).events[0]!.type).toBe('PaymentAuthorized');
  });
  it('pays an order once: a second attempt decides nothing', () => {
    const first = spec.given(account(20_000)).when(cmd());
    expect(spec.given(first.state).when(cmd({ paymentId: 'a6c1f1f0-0000-4000-8000-000000000001' })).events).toEqual([]);
  });
});
