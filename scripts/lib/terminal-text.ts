/**
 * Message text on an operator's terminal. A dead-lettered message carries whatever its producer wrote: an escape
 * sequence in a header or body would otherwise be run by the terminal (move the cursor, rewrite earlier lines,
 * set the window title). Control characters are shown as escapes instead, and a tab or newline inside a field can
 * no longer fake a column or a row.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
/** What JSON.stringify leaves raw in strings: it escapes C0 itself, so C0 in its output is formatting. */
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029]/g;

const escapeOf = (c: string) => {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** One field of a text line, with every control character written as a visible escape. */
export function visible(value: unknown): string {
  return String(value ?? '').replace(CONTROL, escapeOf);
}

/** JSON text that is still valid JSON and holds no raw control character (JSON.stringify leaves C1 and U+2028 raw). */
export function terminalJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(
    RAW_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
