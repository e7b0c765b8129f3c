/**
 * Text from the ledger (a worker's summary, an error message, a cancel reason, a bundle's
 * fields) must not drive the operator's terminal. Control characters are shown as `\uXXXX`
 * escapes: C0 (ESC, BEL, CR, LF...), DEL, C1 (CSI...), the line and paragraph separators and
 * the bidirectional embeddings, overrides and isolates (which can make a line read other than
 * it is). `\uXXXX` is also a JSON string escape, so a JSON line stays valid JSON, and means
 * the same, after escaping.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const esc = (c: string) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');

/** One output line: every unsafe character escaped, line breaks included. */
export function terminalLine(s: string): string {
  return s.replace(UNSAFE, esc);
}

/** Text that may span lines on purpose (help, a stack trace): each line escaped, the breaks kept. */
export function terminalText(s: string): string {
  return s.split('\n').map(terminalLine).join('\n');
}
