import type { Request, Response } from 'express';
import helmet from 'helmet';
import { securityHeaders } from '../../src/http/app';

/** A response that records what a middleware sets, in order, and whether it called next. */
function record(mw: (req: Request, res: Response, next: (err?: unknown) => void) => void) {
  const headers = new Map<string, unknown>();
  const removed: string[] = [];
  let nexted = 0;
  const res = {
    setHeader: (k: string, v: unknown) => void headers.set(k.toLowerCase(), v),
    removeHeader: (k: string) => {
      headers.delete(k.toLowerCase());
      removed.push(k.toLowerCase());
    },
  };
  mw({} as Request, res as unknown as Response, () => void nexted++);
  return { headers: Object.fromEntries(headers), removed: [...new Set(removed)].sort(), nexted };
}

describe('security headers', () => {
  it('are exactly the headers helmet sets with the services options', () => {
    const expected = record(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
    const ours = record(securityHeaders());
    expect(ours.headers).toEqual(expected.headers);
    expect(ours.removed).toEqual(expected.removed);
    expect(ours.nexted).toBe(1);
    expect(ours.headers['content-security-policy']).toContain("default-src 'self'");
    expect(ours.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
  });

  it('set the same headers on every response (nothing is shared between responses but the values)', () => {
    const mw = securityHeaders();
    const a = record(mw);
    const b = record(mw);
    expect(b.headers).toEqual(a.headers);
    expect(Object.keys(a.headers).length).toBeGreaterThan(10);
  });
});
