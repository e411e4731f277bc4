import { applyPayment, decidePayment } from '../../src/domain/payment';

const cmd = { orderId: '7f1b1c9e-6a53-4c51-9d4c-2f7c7b0f6a11', customerId: 'c1', amountCents: 5000, paymentId: '0b6a9c1e-1f1d-4f55-8f0e-0e3f4b7e2d11' };
const LIMIT = 100_000;

describe('authorize payment', () => {
  it('authorizes when the balance covers the amount within the limit, and debits it', () => {
    const d = decidePayment({ customerId: 'c1', balanceCents: 5000 }, cmd, LIMIT);
    expect(d).toEqual({ type: 'PaymentAuthorized', data: cmd });
    expect(applyPayment({ customerId: 'c1', balanceCents: 5000 }, d).balanceCents).toBe(0);
  });
  it('declines an unknown customer', () => {
    expect(decidePayment(undefined, cmd, LIMIT)).toEqual({ type: 'PaymentDeclined', data: { ...cmd, reason: 'UNKNOWN_CUSTOMER' } });
  });
  it('declines insufficient funds and leaves the balance alone', () => {
    const d = decidePayment({ customerId: 'c1', balanceCents: 4999 }, cmd, LIMIT);
    expect(d).toMatchObject({ type: 'PaymentDeclined', data: { reason: 'INSUFFICIENT_FUNDS' } });
    expect(applyPayment({ customerId: 'c1', balanceCents: 4999 }, d).balanceCents).toBe(4999);
  });
  it('declines over the per-payment limit even when the balance would cover it', () => {
    expect(decidePayment({ customerId: 'c1', balanceCents: 10_000_000 }, { ...cmd, amountCents: LIMIT + 1 }, LIMIT)).toMatchObject({
      type: 'PaymentDeclined',
      data: { reason: 'LIMIT_EXCEEDED' },
    });
    expect(decidePayment({ customerId: 'c1', balanceCents: 10_000_000 }, { ...cmd, amountCents: LIMIT }, LIMIT).type).toBe('PaymentAuthorized');
  });
});
