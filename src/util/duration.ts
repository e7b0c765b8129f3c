import { OkitError } from '../errors.js';
import type { Micros } from './time.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
/** Ten years: a longer window or retention is a typo. */
const MAX_SECONDS = 10 * 365 * 86_400;

/** `90d`, `24h`, `30m`, `45s`, `2w` → seconds (a positive whole number of the unit). */
export function parseDuration(text: unknown, field: string): number {
  const m = typeof text === 'string' ? /^([1-9][0-9]{0,8})([smhdw])$/.exec(text.trim()) : null;
  const s = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!m || s > MAX_SECONDS) throw new OkitError('INVALID_INPUT', `${field}: must be a duration such as 90d, 24h, 30m or 45s (at most 10 years), got ${JSON.stringify(text)}`, { field });
  return s;
}

export function durationMicros(text: unknown, field: string): Micros {
  return BigInt(parseDuration(text, field)) * 1_000_000n;
}
