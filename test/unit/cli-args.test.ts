import { z } from 'zod';
import { parseArgs } from 'node:util';
import { decideArgs, formatUsage, usageError } from '../../packages/common/src/runtime/cli-args';

describe('component arguments', () => {
  it('runs when there are none', () => {
    expect(decideArgs([])).toEqual({ action: 'run' });
  });
  it('answers --help, -h and help wherever they are', () => {
    for (const args of [['--help'], ['-h'], ['help'], ['list', '--help']])
      expect(decideArgs(args, () => true)).toEqual({ action: 'help' });
  });
  it('refuses arguments a long-running component does not take', () => {
    expect(decideArgs(['--port', '9000'])).toEqual({ action: 'refuse', message: 'unknown arguments: --port 9000' });
  });
  it('passes arguments a tool accepts', () => {
    expect(decideArgs(['list', 'order'], (a) => a[0] === 'list')).toEqual({ action: 'run' });
    expect(decideArgs(['lst'], (a) => a[0] === 'list' || 'the command is list')).toEqual({
      action: 'refuse',
      message: 'the command is list',
    });
    expect(decideArgs([], (a) => a.length > 0 || 'a command is needed')).toEqual({
      action: 'refuse',
      message: 'a command is needed',
    });
  });
  it('lists every environment variable with its default', () => {
    const text = formatUsage({
      name: 'saga x',
      summary: 'does x',
      env: z.object({ PORT: z.coerce.number().default(8000), URL: z.string().optional() }),
    });
    expect(text).toContain('usage: saga x');
    expect(text).toMatch(/PORT\s+default 8000/);
    expect(text).toMatch(/URL\s+\(optional or required, no default\)/);
  });
});

describe('argument mistakes found by parseArgs', () => {
  const refusal = (args: string[]) => {
    try {
      parseArgs({ args, options: { json: { type: 'boolean' }, limit: { type: 'string' } }, strict: true });
    } catch (err) {
      return usageError(err);
    }
    return 'accepted';
  };
  it('names the option in the words the tools use', () => {
    expect(refusal(['--all'])).toBe('unknown argument --all');
    expect(refusal(['-x'])).toBe('unknown argument -x');
    expect(refusal(['--limit'])).toContain("'--limit <value>' argument missing");
    expect(refusal(['stray'])).toBe('unexpected argument');
    expect(refusal(['--limit', '3'])).toBe('accepted');
  });
  it('lets any other error through', () => {
    expect(() => usageError(new Error('disk on fire'))).toThrow('disk on fire');
  });
});
