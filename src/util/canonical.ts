/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 * ECMAScript's JSON.stringify already serialises well-formed strings and finite numbers
 * exactly as JCS requires; what is left is key order (UTF-16 code units, which is what the
 * default Array.prototype.sort compares), I-JSON's ban on lone surrogates, and refusing values
 * JSON cannot represent. The walk is iterative: any nesting depth is serialised without
 * recursion (JSON.parse is iterative in V8 too), so a deep value cannot overflow the stack.
 *
 * Number policy (docs/bundle-format.md §2): every finite double is accepted and written the
 * ES6 way (1e300 → 1e+300, 2^60 → 1152921504606847000). Where JSON *text* comes in (HTTP
 * bodies, jsonb read back from Postgres), inexactNumber() refuses a number whose text does not
 * have the same decimal value as the ES6 serialisation of the double it parses to
 * (12345678901234567890 would silently become 12345678901234567000).
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class CanonicalJsonError extends TypeError {}

interface Frame {
  arr: readonly unknown[] | null;
  obj: Record<string, unknown> | null;
  keys: string[] | null;
  i: number;
}

function pathOf(stack: readonly Frame[]): string {
  let p = '$';
  for (const f of stack) p += f.arr ? `[${f.i}]` : `.${f.keys![f.i]}`;
  return p;
}

// ES2024 (Node 20 has it; TypeScript's lib here predates it).
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function quote(s: string, stack: readonly Frame[], what: string): string {
  if (!wellFormed(s)) throw new CanonicalJsonError(`${pathOf(stack)}: ${what} contains a lone surrogate (I-JSON, RFC 7493 §2.1, forbids it)`);
  return JSON.stringify(s);
}

function scalar(v: unknown, stack: readonly Frame[]): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return quote(v, stack, 'string');
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${pathOf(stack)}: non-finite number`);
      return JSON.stringify(v);
    case 'bigint':
      throw new CanonicalJsonError(`${pathOf(stack)}: bigint must travel as a string`);
    default:
      throw new CanonicalJsonError(`${pathOf(stack)}: ${typeof v} is not JSON`);
  }
}

/**
 * True when JSON.stringify(v) is already v's canonical form: only JSON values, every object's
 * keys in code-unit order as Object.keys lists them (so JSON.stringify writes them sorted),
 * every string and key well-formed, nesting shallow enough for V8's recursive stringify. Then
 * the native serialiser does the work (what a canonical line parses to always qualifies).
 */
const FAST_DEPTH = 512;
function stringifiesCanonically(value: unknown): boolean {
  const todo: unknown[] = [value];
  const depth: number[] = [0];
  while (todo.length) {
    const v = todo.pop();
    const d = depth.pop()!;
    if (v === null || v === true || v === false) continue;
    switch (typeof v) {
      case 'string':
        if (!wellFormed(v)) return false;
        continue;
      case 'number':
        if (!Number.isFinite(v)) return false;
        continue;
      case 'object': {
        if (d >= FAST_DEPTH) return false;
        if (Array.isArray(v)) {
          for (let i = 0; i < v.length; i++) {
            todo.push(v[i]);
            depth.push(d + 1);
          }
          continue;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) return false;
        const o = v as Record<string, unknown>;
        let prev: string | null = null;
        for (const k in o) {
          if (prev !== null && !(prev < k)) return false;
          if (!wellFormed(k)) return false;
          const x = o[k];
          if (x === undefined) return false;
          prev = k;
          todo.push(x);
          depth.push(d + 1);
        }
        continue;
      }
      default:
        return false;
    }
  }
  return true;
}

export function canonicalize(value: unknown): string {
  if (stringifiesCanonically(value)) return JSON.stringify(value);
  // Unsorted keys (jsonb read back from Postgres orders keys by length): a copy with every
  // object's keys inserted in order, when that stringifies canonically, is serialised natively
  // too; anything else (integer-like keys, lone surrogates, non-JSON values) takes the walk.
  const sorted = sortedCopy(value, 0);
  if (sorted !== NOT_COPIED && stringifiesCanonically(sorted)) return JSON.stringify(sorted);
  return canonicalizeSlow(value);
}

const NOT_COPIED = Symbol('not copied');
const COPY_DEPTH = 64;

/** value with every plain object's defined members re-inserted in key order (shallow values only). */
function sortedCopy(v: unknown, depth: number): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (depth >= COPY_DEPTH) return NOT_COPIED;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const x = sortedCopy(v[i], depth + 1);
      if (x === NOT_COPIED) return NOT_COPIED;
      out[i] = x;
    }
    return out;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return NOT_COPIED;
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) {
    if (o[k] === undefined) continue;
    // Assigning "__proto__" would set the prototype, not a member: leave such values to the walk.
    if (k === '__proto__') return NOT_COPIED;
    const x = sortedCopy(o[k], depth + 1);
    if (x === NOT_COPIED) return NOT_COPIED;
    out[k] = x;
  }
  return out;
}

function canonicalizeSlow(value: unknown): string {
  const stack: Frame[] = [];
  let out = '';
  let v: unknown = value;
  for (;;) {
    if (typeof v === 'object' && v !== null) {
      if (Array.isArray(v)) {
        if (v.length === 0) out += '[]';
        else {
          out += '[';
          stack.push({ arr: v, obj: null, keys: null, i: 0 });
          v = v[0];
          continue;
        }
      } else {
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) throw new CanonicalJsonError(`${pathOf(stack)}: only plain objects are JSON`);
        const obj = v as Record<string, unknown>;
        const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
        if (keys.length === 0) out += '{}';
        else {
          const f: Frame = { arr: null, obj, keys, i: 0 };
          stack.push(f);
          out += '{' + quote(keys[0]!, stack, 'key') + ':';
          v = obj[keys[0]!];
          continue;
        }
      }
    } else out += scalar(v, stack);
    // Close finished containers; stop at the next member or element to serialise.
    for (;;) {
      const f = stack[stack.length - 1];
      if (!f) return out;
      f.i++;
      if (f.arr) {
        if (f.i < f.arr.length) {
          out += ',';
          v = f.arr[f.i];
          break;
        }
        out += ']';
      } else {
        const keys = f.keys!;
        if (f.i < keys.length) {
          out += ',' + quote(keys[f.i]!, stack, 'key') + ':';
          v = f.obj![keys[f.i]!];
          break;
        }
        out += '}';
      }
      stack.pop();
    }
  }
}

/** True when `text` is exactly the canonical form of the JSON it encodes. */
export function isCanonical(text: string): boolean {
  try {
    return canonicalize(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}

/** A decimal number as sign, significant digits (no leading or trailing zeros) and exponent; zero is ''. */
function decimal(token: string): { neg: boolean; digits: string; exp: number } | null {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (!m) return null;
  const frac = m[3] ?? '';
  let digits = (m[2]! + frac).replace(/^0+/, '');
  let exp = Number(m[4] ?? '0') - frac.length;
  const trailing = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trailing);
  exp += trailing;
  return { neg: m[1] === '-' && digits !== '', digits, exp: digits === '' ? 0 : exp };
}

/**
 * Why a JSON number token cannot travel exactly, or null: its decimal value must equal that
 * of the ES6 serialisation of the double it parses to, which is what canonical JSON writes.
 */
export function numberProblem(token: string): string | null {
  const d = Number(token);
  if (!Number.isFinite(d)) return `${token} is beyond the range of a double`;
  const es6 = JSON.stringify(d);
  const a = decimal(token);
  const b = decimal(es6);
  if (!a || !b) return `${token} is not a JSON number`;
  if (a.neg !== b.neg || a.digits !== b.digits || a.exp !== b.exp)
    return `not exactly representable as a double: ${token.length > 40 ? token.slice(0, 40) + '…' : token} would be read as ${es6}; send it as a string`;
  return null;
}

// Cheap screen (a superset, digits in strings included): a number of at most 15 significant
// digits and no exponent always round-trips, so text without a longer one needs no scan.
function suspect(text: string): boolean {
  if (/\d[eE]|\d{16}/.test(text)) return true;
  const re = /\d+\.\d+/g;
  for (let m = re.exec(text); m; m = re.exec(text)) if (m[0].length > 16) return true;
  return false;
}

/**
 * The first number in JSON text that does not travel exactly (see numberProblem), or null.
 * `text` must be valid JSON; strings are skipped, so digits inside them never count.
 */
export function inexactNumber(text: string): string | null {
  if (!suspect(text)) return null;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // skip a string
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < n && /[0-9eE.+-]/.test(text[j]!)) j++;
      const token = text.slice(i, j);
      const sig = token.replace(/[eE].*$/, '').replace(/[^0-9]/g, '').replace(/^0+/, '').replace(/0+$/, '');
      if (sig.length > 15 || /[eE]/.test(token)) {
        const p = numberProblem(token);
        if (p) return p;
      }
      i = j - 1;
    }
  }
  return null;
}
