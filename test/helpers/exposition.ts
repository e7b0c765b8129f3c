/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line
 * must be a comment, a blank line, or a well-formed sample, else it throws.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
  /** Samples of `name` whose labels include every pair in `match`. */
  find(name: string, match?: Record<string, string>): Sample[];
  /** The one sample of `name` matching `match` (throws if none or several). */
  value(name: string, match?: Record<string, string>): number;
  /** Sum over samples of `name` matching `match` (0 if none). */
  sum(name: string, match?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseLabels(s: string, line: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // after '{'
  for (;;) {
    while (s[i] === ' ' || s[i] === ',') i++;
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m || s[i + m[0].length] !== '=' || s[i + m[0].length + 1] !== '"') throw new Error(`bad label in: ${line}`);
    i += m[0].length + 2;
    let v = '';
    for (;;) {
      const c = s[i++];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const n = s[i++];
        v += n === 'n' ? '\n' : n;
      } else v += c;
    }
    if (m[0] in labels) throw new Error(`duplicate label ${m[0]} in: ${line}`);
    labels[m[0]] = v;
  }
}

/** As Prometheus reads values (Go's strconv.ParseFloat): NaN and Inf in any case. */
function parseValue(t: string, line: string): number {
  if (/^\+?inf(inity)?$/i.test(t)) return Infinity;
  if (/^-inf(inity)?$/i.test(t)) return -Infinity;
  if (/^nan$/i.test(t)) return NaN;
  const x = Number(t);
  if (t === '' || !Number.isFinite(x)) throw new Error(`bad value in: ${line}`);
  return x;
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (m?.[1] === 'TYPE') types.set(m[2]!, m[3]!);
      else if (m?.[1] === 'HELP') help.set(m[2]!, m[3]!);
      continue;
    }
    const n = NAME.exec(line);
    if (!n) throw new Error(`bad sample: ${line}`);
    let rest = line.slice(n[0].length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    const parts = rest.trim().split(/\s+/);
    if (parts.length < 1 || parts.length > 2) throw new Error(`bad sample: ${line}`);
    samples.push({ name: n[0], labels, value: parseValue(parts[0]!, line) });
  }
  const matches = (s: Sample, name: string, match: Record<string, string>) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v);
  return {
    samples,
    types,
    help,
    find: (name, match = {}) => samples.filter((s) => matches(s, name, match)),
    value(name, match = {}) {
      const f = samples.filter((s) => matches(s, name, match));
      if (f.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(match)}, found ${f.length}`);
      return f[0]!.value;
    },
    sum: (name, match = {}) => samples.filter((s) => matches(s, name, match)).reduce((a, s) => a + s.value, 0),
  };
}
