import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError, parseEnv } from '../../src/runtime/config';

const Schema = z.object({ DATABASE_URL: z.string().url(), PORT: z.coerce.number().int().default(8000) });

describe('configuration', () => {
  it('parses and applies defaults', () => {
    expect(parseEnv(Schema, { DATABASE_URL: 'postgres://a@h/db' })).toEqual({
      DATABASE_URL: 'postgres://a@h/db',
      PORT: 8000,
    });
  });
  it('names every bad variable', () => {
    try {
      parseEnv(Schema, { DATABASE_URL: 'nope', PORT: 'x' });
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((i) => i.variable).sort()).toEqual(['DATABASE_URL', 'PORT']);
    }
  });
  it('reads a secret from the file named by <NAME>_FILE', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cfg-'));
    writeFileSync(path.join(dir, 'url'), 'postgres://u:secret@h/db\n');
    expect(parseEnv(Schema, { DATABASE_URL_FILE: path.join(dir, 'url') }).DATABASE_URL).toBe(
      'postgres://u:secret@h/db',
    );
    expect(
      parseEnv(Schema, { DATABASE_URL: 'postgres://x@h/d', DATABASE_URL_FILE: path.join(dir, 'url') }).DATABASE_URL,
    ).toBe('postgres://x@h/d');
  });
});

describe('configuration from files', () => {
  it('ignores <NAME>_FILE variables of other programs', () => {
    expect(parseEnv(Schema, { DATABASE_URL: 'postgres://a@h/db', TF_CLI_CONFIG_FILE: '/nonexistent' }).PORT).toBe(8000);
  });
});

describe('database URLs', () => {
  const { DatabaseUrl } = jest.requireActual<typeof import('../../src/runtime/config')>('../../src/runtime/config');
  it.each([
    'postgres://order_svc@127.0.0.1:5432/orders',
    'postgresql:///orders?host=/var/run/postgresql',
    'postgresql://order_svc:s3cret@/orders?host=/var/run/postgresql',
    'postgres://u@%2Fvar%2Frun%2Fpostgresql/orders',
  ])('accepts %s (TCP or a Unix socket)', (url) => expect(DatabaseUrl.safeParse(url).success).toBe(true));
  it.each(['mysql://u@h/db', 'orders', 'postgres://'])('refuses %s with a reason', (url) => {
    const r = DatabaseUrl.safeParse(url);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/postgres:\/\//);
  });
});
