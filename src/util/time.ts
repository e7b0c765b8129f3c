/**
 * Time in okit is an integer count of microseconds since the Unix epoch (bigint),
 * rendered as RFC 3339 UTC with exactly six fraction digits: the precision Postgres stores.
 */
export type Micros = bigint;

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})$/;

export function formatMicros(us: Micros): string {
  // Floor to whole seconds (bigint division truncates toward zero, wrong before 1970).
  let frac = us % 1000000n;
  if (frac < 0n) frac += 1000000n;
  const secs = (us - frac) / 1000000n;
  const base = new Date(Number(secs) * 1000).toISOString().slice(0, 19);
  return `${base}.${frac.toString().padStart(6, '0')}Z`;
}

/** Parses RFC 3339 (or Postgres' `YYYY-MM-DD HH:MM:SS.ffffff+00` text) into microseconds. */
export function parseMicros(text: string): Micros {
  const t = text.trim().replace(' ', 'T');
  const m = ISO_RE.exec(t.endsWith('+00') || t.endsWith('-00') ? t + ':00' : t);
  if (!m) throw new RangeError(`not an RFC 3339 timestamp: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, frac = '', tz] = m;
  const date = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!));
  date.setUTCFullYear(+y!); // Date.UTC maps years 0..99 to 1900..1999
  // Date.UTC rolls 2025-02-30 over to March 2: refuse any field that did not survive.
  if (
    Number.isNaN(date.getTime()) ||
    date.getUTCFullYear() !== +y! ||
    date.getUTCMonth() !== +mo! - 1 ||
    date.getUTCDate() !== +d! ||
    date.getUTCHours() !== +h! ||
    date.getUTCMinutes() !== +mi! ||
    date.getUTCSeconds() !== +s!
  )
    throw new RangeError(`invalid date: ${text}`);
  const secs = date.getTime() / 1000;
  let offsetSec = 0;
  if (tz !== 'Z') {
    const sign = tz!.startsWith('-') ? -1 : 1;
    const digits = tz!.slice(1).replace(':', '');
    const oh = +digits.slice(0, 2);
    const om = +digits.slice(2, 4);
    // RFC 3339's time-numoffset: hours 00..23, minutes 00..59 (+99:99 is no offset at all).
    if (oh > 23 || om > 59) throw new RangeError(`invalid UTC offset: ${text}`);
    offsetSec = sign * (oh * 3600 + om * 60);
  }
  return BigInt(secs - offsetSec) * 1000000n + BigInt(frac.padEnd(6, '0'));
}

// UTC text as Postgres writes it with DateStyle=ISO (`2025-12-04 12:00:00.001+00`), or RFC 3339 in Z.
const UTC_RE = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:\+00(?::?00)?|Z)$/;

/** Normalises any timestamp text Postgres or a user sends to canonical RFC 3339 microsecond form. */
export function normalizeTimestamp(text: string): string {
  // UTC (every timestamp an export reads): the digits are kept as they are, once the result is
  // a real date; the same text formatMicros(parseMicros(text)) gives, without the arithmetic.
  const m = UTC_RE.exec(text);
  if (m) {
    const t = `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}Z`;
    if (isCanonicalTimestamp(t)) return t;
  }
  return formatMicros(parseMicros(text));
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Exactly the form okit writes: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (what bundles must carry), a real
 * date (proleptic Gregorian, as formatMicros renders it). Checked char by char (3x faster than
 * a regex): the verifier calls this for every timestamp of every line.
 */
export function isCanonicalTimestamp(text: unknown): text is string {
  if (typeof text !== 'string' || text.length !== 27) return false;
  for (let i = 0; i < 27; i++) {
    const c = text.charCodeAt(i);
    const want = i === 4 || i === 7 ? 0x2d : i === 10 ? 0x54 : i === 13 || i === 16 ? 0x3a : i === 19 ? 0x2e : i === 26 ? 0x5a : -1;
    if (want === -1 ? c < 0x30 || c > 0x39 : c !== want) return false;
  }
  const two = (i: number) => (text.charCodeAt(i) - 0x30) * 10 + text.charCodeAt(i + 1) - 0x30;
  const y = two(0) * 100 + two(2);
  const mo = two(5);
  const d = two(8);
  if (mo < 1 || mo > 12 || d < 1 || two(11) > 23 || two(14) > 59 || two(17) > 59) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (mo === 2 && leap ? 29 : DAYS[mo - 1]!);
}

export function isTimestamp(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  try {
    parseMicros(text);
    return true;
  } catch {
    return false;
  }
}

export const SECOND: Micros = 1000000n;
export function secondsToMicros(s: number): Micros {
  return BigInt(Math.round(s * 1e6));
}
export function microsToSeconds(us: Micros): number {
  return Number(us) / 1e6;
}
