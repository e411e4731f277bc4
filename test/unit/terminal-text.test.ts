import { terminalJson, visible } from '../../scripts/lib/terminal-text';

describe('message text printed for an operator', () => {
  const hostile = 'ok\u001b[2J\u001b]0;owned\u0007\ttab\nline\u009b31m\u2028end';

  it('shows every control character of a field as a visible escape', () => {
    const out = visible(hostile);
    expect(out).toBe('ok\\x1b[2J\\x1b]0;owned\\x07\\x09tab\\x0aline\\x9b31m\\u2028end');
    // eslint-disable-next-line no-control-regex -- the test looks for raw control characters
    expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
  });

  it('prints missing fields as empty and leaves other text alone', () => {
    expect(visible(undefined)).toBe('');
    expect(visible('käse 🧀 ok')).toBe('käse 🧀 ok');
  });

  it('writes JSON that holds no raw control character and parses back to the same value', () => {
    const value = { body: hostile, nested: [hostile] };
    for (const text of [terminalJson(value), terminalJson(value, 2)]) {
      // eslint-disable-next-line no-control-regex -- the test looks for raw control characters
      expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/);
      expect(JSON.parse(text)).toEqual(value);
    }
  });
});
