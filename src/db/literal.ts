/**
 * SQL text with its parameters written in as literals, so that several statements travel in one
 * simple-query message (one round trip) where the extended protocol needs one per statement.
 * The ledger's batch writer uses it for its reads and for "write; COMMIT". Every value becomes a
 * quoted string literal that the statement casts (`$2::uuid[]`): strings, numbers, bigints,
 * booleans, null, and one-dimensional arrays of those, encoded as node-postgres encodes bound
 * parameters. Postgres text cannot hold NUL, so a value containing one is refused.
 */

/** A string literal that reads back as exactly `s`, whatever standard_conforming_strings says. */
export function quote(s: string): string {
  if (s.includes('\u0000')) throw new RangeError('a SQL literal cannot contain NUL');
  const q = s.replace(/'/g, "''");
  return s.includes('\\') ? `E'${q.replace(/\\/g, '\\\\')}'` : `'${q}'`;
}

function scalar(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${v}`);
    return String(v);
  }
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  throw new TypeError(`cannot write ${typeof v} as a SQL literal`);
}

/** An array literal's text: `{"a","b",NULL}` (elements quoted and escaped as node-postgres does). */
function arrayText(xs: readonly unknown[]): string {
  return `{${xs
    .map((x) => {
      if (Array.isArray(x)) throw new TypeError('nested arrays are not supported');
      const s = scalar(x);
      return s === null ? 'NULL' : `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    })
    .join(',')}}`;
}

export function literal(v: unknown): string {
  if (Array.isArray(v)) return quote(arrayText(v));
  const s = scalar(v);
  return s === null ? 'NULL' : quote(s);
}

/** `text` with each `$n` replaced by the literal of params[n-1]. */
export function inline(text: string, params: readonly unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, d: string) => {
    const i = Number(d) - 1;
    if (i < 0 || i >= params.length) throw new RangeError(`no parameter $${d}`);
    return literal(params[i]);
  });
}
