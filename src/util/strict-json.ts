/**
 * A strict I-JSON (RFC 7493) parser for what clients send: RFC 8259 syntax, and refused
 * (rather than silently resolved) duplicate keys, lone surrogates, Unicode noncharacters,
 * numbers beyond a double's range and nesting deeper than `maxDepth`. It is iterative (an
 * explicit stack, no recursion), so no input can overflow the call stack, and every refusal
 * names its reason, position and path.
 *
 * Why not JSON.parse: it keeps the last of duplicate keys, accepts noncharacters and escaped
 * lone surrogates, and has no depth bound. No maintained npm parser does all four without
 * recursion, so this is ours (about 200 lines, tested in test/util/strict-json.test.ts).
 */

export type StrictJsonReason = 'syntax' | 'duplicate_key' | 'lone_surrogate' | 'noncharacter' | 'number_out_of_range' | 'too_deep';

export class StrictJsonError extends Error {
  constructor(
    readonly reason: StrictJsonReason,
    readonly what: string,
    /** UTF-16 offset into the text. */
    readonly offset: number,
    readonly line: number,
    readonly column: number,
    /** Keys and indices from the root to where the problem is. */
    readonly path: ReadonlyArray<string | number>,
    readonly key?: string,
  ) {
    super(`${what} at line ${line}, column ${column}${path.length ? ` (${formatPath(path)})` : ''}`);
    this.name = 'StrictJsonError';
  }
}

export interface StrictJsonOptions {
  /** Most arrays/objects open at once; the root container is depth 1. */
  maxDepth: number;
}

/** `$.payload.items[3]`; long paths keep their first and last steps. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  const step = (p: string | number) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p.length > 40 ? p.slice(0, 40) + '…' : p)}]`);
  const steps = path.map(step);
  return '$' + (steps.length > 8 ? steps.slice(0, 4).join('') + '…' + steps.slice(-2).join('') : steps.join(''));
}

/** One open container. One shape for both kinds keeps the hot loop monomorphic. */
class Frame {
  key = '';
  constructor(
    readonly arr: unknown[] | null,
    readonly obj: Record<string, unknown> | null,
  ) {}
}

const WS = /[ \t\n\r]*/y;
const NUM = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// Runs of characters that need no attention inside a string.
const PLAIN = /[^"\\\u0000-\u001f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]*/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** U+FDD0..U+FDEF and the last two code points of every plane. */
export function isNoncharacter(cp: number): boolean {
  return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

const hexCp = (cp: number) => 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');

export function parseStrictJson(text: string, opts: StrictJsonOptions): unknown {
  let i = 0;
  const stack: Frame[] = [];

  const fail = (reason: StrictJsonReason, what: string, at = i, key?: string): never => {
    let line = 1;
    let lineStart = 0;
    for (let k = text.indexOf('\n'); k !== -1 && k < at; k = text.indexOf('\n', k + 1)) {
      line++;
      lineStart = k + 1;
    }
    const path = stack.map((f) => (f.arr ? f.arr.length : f.key));
    throw new StrictJsonError(reason, what, at, line, at - lineStart + 1, path, key);
  };
  const ws = () => {
    WS.lastIndex = i;
    WS.test(text);
    i = WS.lastIndex;
  };
  const describe = (at: number) => (at >= text.length ? 'end of input' : `character ${JSON.stringify(text[at])} (${hexCp(text.codePointAt(at)!)})`);
  const hex4 = (at: number): number => {
    const h = text.slice(at, at + 4);
    if (!/^[0-9A-Fa-f]{4}$/.test(h)) fail('syntax', 'invalid \\u escape', at - 2);
    return parseInt(h, 16);
  };

  const readString = (): string => {
    const start = i;
    i++; // the opening quote
    let out = '';
    for (;;) {
      PLAIN.lastIndex = i;
      PLAIN.test(text);
      if (PLAIN.lastIndex > i) {
        out += text.slice(i, PLAIN.lastIndex);
        i = PLAIN.lastIndex;
      }
      if (i >= text.length) fail('syntax', 'unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          let cp = hex4(i + 2);
          const at = i;
          i += 6;
          if (cp >= 0xd800 && cp <= 0xdbff) {
            const lo = text.startsWith('\\u', i) ? hex4(i + 2) : -1;
            if (lo < 0xdc00 || lo > 0xdfff) fail('lone_surrogate', `lone surrogate ${hexCp(cp)} (escaped)`, at);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
          } else if (cp >= 0xdc00 && cp <= 0xdfff) fail('lone_surrogate', `lone surrogate ${hexCp(cp)} (escaped)`, at);
          if (isNoncharacter(cp)) fail('noncharacter', `noncharacter ${hexCp(cp)}`, at);
          out += String.fromCodePoint(cp);
          continue;
        }
        const r = e === undefined ? undefined : ESCAPES[e];
        if (r === undefined) fail('syntax', `invalid escape ${JSON.stringify('\\' + (e ?? ''))}`);
        out += r;
        i += 2;
        continue;
      }
      if (c < 0x20) fail('syntax', `unescaped control character ${hexCp(c)} in a string`);
      if (c >= 0xd800 && c <= 0xdbff) {
        const lo = text.charCodeAt(i + 1);
        if (!(lo >= 0xdc00 && lo <= 0xdfff)) fail('lone_surrogate', `lone surrogate ${hexCp(c)}`);
        const cp = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        if (isNoncharacter(cp)) fail('noncharacter', `noncharacter ${hexCp(cp)}`);
        out += text.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (c >= 0xdc00 && c <= 0xdfff) fail('lone_surrogate', `lone surrogate ${hexCp(c)}`);
      fail('noncharacter', `noncharacter ${hexCp(c)}`);
    }
  };

  /** Reads `"key":` of the object on top of the stack, refusing a key it already has. */
  const readKey = (f: Frame) => {
    if (text.charCodeAt(i) !== 0x22) fail('syntax', `expected a string key, found ${describe(i)}`);
    const at = i;
    const k = readString();
    f.key = k;
    // Every key is an own property as soon as its value is set (see below), so this sees them all.
    if (Object.hasOwn(f.obj!, k)) fail('duplicate_key', `duplicate key ${JSON.stringify(k.length > 60 ? k.slice(0, 60) + '…' : k)}`, at, k);
    ws();
    if (text.charCodeAt(i) !== 0x3a) fail('syntax', `expected ':' after a key, found ${describe(i)}`);
    i++;
    ws();
  };

  const open = () => {
    if (stack.length + 1 > opts.maxDepth) fail('too_deep', `nested deeper than ${opts.maxDepth} levels`);
  };

  ws();
  for (;;) {
    // A value starts at i.
    let value: unknown;
    const c = text.charCodeAt(i);
    if (c === 0x7b) {
      open();
      i++;
      ws();
      const obj: Record<string, unknown> = {};
      if (text.charCodeAt(i) === 0x7d) {
        i++;
        value = obj;
      } else {
        const f = new Frame(null, obj);
        stack.push(f);
        readKey(f);
        continue;
      }
    } else if (c === 0x5b) {
      open();
      i++;
      ws();
      if (text.charCodeAt(i) === 0x5d) {
        i++;
        value = [];
      } else {
        stack.push(new Frame([], null));
        continue;
      }
    } else if (c === 0x22) value = readString();
    else if (text.startsWith('true', i)) (value = true), (i += 4);
    else if (text.startsWith('false', i)) (value = false), (i += 5);
    else if (text.startsWith('null', i)) (value = null), (i += 4);
    else {
      NUM.lastIndex = i;
      if (!NUM.test(text)) fail('syntax', `unexpected ${describe(i)}`);
      const n = Number(text.slice(i, NUM.lastIndex));
      if (!Number.isFinite(n)) fail('number_out_of_range', 'number beyond the range of a double');
      value = n;
      i = NUM.lastIndex;
    }
    // Attach the value to its container; close every container that ends here.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) {
        ws();
        if (i < text.length) fail('syntax', `unexpected ${describe(i)} after the JSON value`);
        return value;
      }
      if (top.arr) top.arr.push(value);
      // defineProperty: a "__proto__" key is an own property, as with JSON.parse.
      else if (top.key === '__proto__') Object.defineProperty(top.obj, top.key, { value, enumerable: true, writable: true, configurable: true });
      else top.obj![top.key] = value;
      ws();
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        ws();
        if (top.obj) readKey(top);
        break;
      }
      if (d === (top.arr ? 0x5d : 0x7d)) {
        i++;
        stack.pop();
        value = top.arr ?? top.obj;
        continue;
      }
      fail('syntax', `expected ',' or '${top.arr ? ']' : '}'}', found ${describe(i)}`);
    }
  }
}
