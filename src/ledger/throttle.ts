/**
 * Token bucket per {tenant, source host}, in exact integer arithmetic: tokens and refill
 * rates are held in millionths (the numeric(12,6) the table stores), time in microseconds.
 * Adaptive refill (AIMD): an upstream throttle halves the refill rate and pauses refill for
 * its Retry-After; each later successful take adds a tenth of the base rate back.
 */
import { formatMicros, parseMicros, type Micros } from '../util/time.js';
import { tsOrNull } from './rows.js';

export interface Bucket {
  capacity: bigint; // millionths of a token
  baseRefill: bigint; // millionths of a token per second
  refill: bigint;
  tokens: bigint;
  updatedAt: Micros;
  penaltyUntil: Micros | null;
}

const ONE = 1000000n;

export function toMicroUnits(decimal: string): bigint {
  const [int, frac = ''] = String(decimal).split('.');
  const neg = int!.startsWith('-');
  const v = BigInt(int!.replace('-', '') || '0') * ONE + BigInt((frac + '000000').slice(0, 6));
  return neg ? -v : v;
}

/** Millionths back to a decimal string with no trailing zeros ("2.5", "10"). */
export function fromMicroUnits(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const int = a / ONE;
  const frac = (a % ONE).toString().padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${int}${frac ? '.' + frac : ''}`;
}

export function toBucket(r: Record<string, unknown>): Bucket {
  const pu = tsOrNull(r.penalty_until);
  return {
    capacity: toMicroUnits(String(r.capacity)),
    baseRefill: toMicroUnits(String(r.base_refill_per_sec)),
    refill: toMicroUnits(String(r.refill_per_sec)),
    tokens: toMicroUnits(String(r.tokens)),
    updatedAt: parseMicros(String(r.updated_at)),
    penaltyUntil: pu ? parseMicros(pu) : null,
  };
}

/** The bucket refilled up to `now` (no refill while a penalty lasts). */
export function refill(b: Bucket, now: Micros): Bucket {
  const from = b.penaltyUntil !== null && b.penaltyUntil > b.updatedAt ? b.penaltyUntil : b.updatedAt;
  const elapsed = now > from ? now - from : 0n;
  const added = (elapsed * b.refill) / ONE;
  const tokens = b.tokens + added > b.capacity ? b.capacity : b.tokens + added;
  const updatedAt = now > b.updatedAt ? now : b.updatedAt;
  return { ...b, tokens, updatedAt, penaltyUntil: b.penaltyUntil !== null && b.penaltyUntil > now ? b.penaltyUntil : null };
}

export type TakeResult = { ok: true; bucket: Bucket; restored: boolean } | { ok: false; bucket: Bucket; waitUs: Micros };

export function consumeToken(b0: Bucket, now: Micros): TakeResult {
  const b = refill(b0, now);
  if (b.tokens >= ONE && b.penaltyUntil === null) {
    let refillRate = b.refill;
    let restored = false;
    if (refillRate < b.baseRefill) {
      refillRate += b.baseRefill / 10n;
      if (refillRate >= b.baseRefill) {
        refillRate = b.baseRefill;
        restored = true;
      }
    }
    return { ok: true, bucket: { ...b, tokens: b.tokens - ONE, refill: refillRate }, restored };
  }
  const penalty = b.penaltyUntil !== null && b.penaltyUntil > now ? b.penaltyUntil - now : 0n;
  const missing = ONE - (b.tokens >= ONE ? ONE : b.tokens);
  const refillUs = (missing * ONE + b.refill - 1n) / b.refill; // ceil(missing / refill) seconds, in µs
  return { ok: false, bucket: b, waitUs: penalty + refillUs };
}

/** An upstream throttle: empty the bucket, pause refill for retryAfter, halve the rate (floor: base/16). */
export function penalise(b0: Bucket, now: Micros, retryAfterUs: Micros): Bucket {
  const b = refill(b0, now);
  const floor = b.baseRefill / 16n > 0n ? b.baseRefill / 16n : 1n;
  const half = b.refill / 2n;
  const until = now + retryAfterUs;
  return { ...b, tokens: 0n, refill: half > floor ? half : floor, penaltyUntil: until > now ? until : now, updatedAt: now };
}

/**
 * A JS number as Postgres stores it in numeric(12, scale) (scale ≤ 6), in millionths: the
 * number's shortest decimal text rounded half away from zero, as `numeric` rounds. Lets the
 * ledger hold a just-configured bucket in memory exactly as the database will.
 */
export function numericMicroUnits(n: number, scale: number): bigint {
  const text = String(n);
  if (!/^-?\d+(\.\d+)?$/.test(text)) throw new RangeError(`not a plain decimal: ${text}`);
  const neg = text.startsWith('-');
  const [int, frac = ''] = text.replace('-', '').split('.');
  const kept = BigInt(int! + (frac + '0'.repeat(scale)).slice(0, scale));
  const up = (frac[scale] ?? '0') >= '5' ? 1n : 0n;
  const v = (kept + up) * 10n ** BigInt(6 - scale);
  return neg ? -v : v;
}

/** A bucket as the HTTP API shows it: decimal strings as the ledger stores them, RFC 3339 times. */
export interface BucketView {
  host: string;
  capacity: string;
  base_refill_per_sec: string;
  refill_per_sec: string;
  tokens: string;
  updated_at: string;
  penalty_until: string | null;
}

export function bucketView(host: string, b: Bucket): BucketView {
  return {
    host,
    capacity: fromMicroUnits(b.capacity),
    base_refill_per_sec: fromMicroUnits(b.baseRefill),
    refill_per_sec: fromMicroUnits(b.refill),
    tokens: fromMicroUnits(b.tokens),
    updated_at: formatMicros(b.updatedAt),
    penalty_until: b.penaltyUntil === null ? null : formatMicros(b.penaltyUntil),
  };
}
