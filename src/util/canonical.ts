/**
 * RFC 8785 JSON Canonicalization Scheme (JCS).
 * ECMAScript's JSON.stringify already serialises strings and finite numbers exactly as
 * JCS requires; what is left is key order (UTF-16 code units, which is what the default
 * Array.prototype.sort compares) and refusing values JSON cannot represent exactly.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export class CanonicalJsonError extends TypeError {}

export function canonicalize(value: unknown): string {
  return ser(value, '$');
}

function ser(v: unknown, path: string): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new CanonicalJsonError(`${path}: non-finite number`);
      if (Number.isInteger(v) && !Number.isSafeInteger(v))
        throw new CanonicalJsonError(`${path}: integer beyond 2^53 must travel as a string`);
      return JSON.stringify(v);
    case 'bigint':
      throw new CanonicalJsonError(`${path}: bigint must travel as a string`);
    case 'object': {
      if (Array.isArray(v)) return '[' + v.map((x, i) => ser(x, `${path}[${i}]`)).join(',') + ']';
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        throw new CanonicalJsonError(`${path}: only plain objects are JSON`);
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      return '{' + keys.map((k) => JSON.stringify(k) + ':' + ser(obj[k], `${path}.${k}`)).join(',') + '}';
    }
    default:
      throw new CanonicalJsonError(`${path}: ${typeof v} is not JSON`);
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
