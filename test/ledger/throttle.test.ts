import { describe, expect, it } from 'vitest';
import { consumeToken, fromMicroUnits, penalise, refill, toMicroUnits, type Bucket } from '../../src/ledger/throttle.js';

const S = 1_000_000n; // one second in µs
const T = 1_000_000n; // one token in millionths

function bucket(over: Partial<Bucket> = {}): Bucket {
  return { capacity: 2n * T, baseRefill: 1n * T, refill: 1n * T, tokens: 2n * T, updatedAt: 0n, penaltyUntil: null, ...over };
}

describe('token bucket (pure, exact integers)', () => {
  it('converts numeric text to millionths and back', () => {
    expect(toMicroUnits('2.5')).toBe(2_500_000n);
    expect(toMicroUnits('0.000001')).toBe(1n);
    expect(toMicroUnits('10')).toBe(10_000_000n);
    expect(toMicroUnits('3.000000')).toBe(3_000_000n);
    expect(fromMicroUnits(2_500_000n)).toBe('2.5');
    expect(fromMicroUnits(10_000_000n)).toBe('10');
    expect(fromMicroUnits(1n)).toBe('0.000001');
    expect(fromMicroUnits(0n)).toBe('0');
  });

  it('takes tokens until empty, then reports the exact wait for the next one', () => {
    let b = bucket();
    for (let i = 0; i < 2; i++) {
      const r = consumeToken(b, 0n);
      expect(r.ok).toBe(true);
      b = r.bucket;
    }
    expect(b.tokens).toBe(0n);
    const r = consumeToken(b, 0n);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.waitUs).toBe(1n * S); // 1 token at 1 token/s
    // Half a second later, half a token: wait the other half.
    const r2 = consumeToken(b, S / 2n);
    expect(r2.ok).toBe(false);
    if (!r2.ok) {
      expect(r2.waitUs).toBe(S / 2n);
      expect(r2.bucket.tokens).toBe(T / 2n);
    }
  });

  it('refills at the rate, never above capacity', () => {
    const empty = bucket({ tokens: 0n });
    expect(refill(empty, S).tokens).toBe(1n * T);
    expect(refill(empty, 10n * S).tokens).toBe(2n * T);
    expect(refill(bucket({ tokens: 0n, refill: T / 4n }), 2n * S).tokens).toBe(T / 2n);
    // The clock never runs backwards in the bucket.
    expect(refill(bucket({ tokens: 0n, updatedAt: 5n * S }), S).updatedAt).toBe(5n * S);
  });

  it('penalise empties the bucket, halves the refill (floor base/16) and pauses refill for retry-after', () => {
    const p = penalise(bucket(), 0n, 3n * S);
    expect(p.tokens).toBe(0n);
    expect(p.refill).toBe(T / 2n);
    expect(p.penaltyUntil).toBe(3n * S);
    // No refill during the penalty: the wait is the rest of the penalty plus one token's refill at the halved rate.
    const during = consumeToken(p, 1n * S);
    expect(during.ok).toBe(false);
    if (!during.ok) expect(during.waitUs).toBe(2n * S + 2n * S);
    // Repeated penalties never go below base/16.
    let q = bucket();
    for (let i = 0; i < 10; i++) q = penalise(q, 0n, 0n);
    expect(q.refill).toBe(T / 16n);
  });

  it('recovers the refill additively (a tenth of base per take) and says when it is restored', () => {
    let b: Bucket = { ...penalise(bucket({ capacity: 100n * T }), 0n, 0n), tokens: 100n * T };
    expect(b.refill).toBe(T / 2n);
    const rates: bigint[] = [];
    let restoredAt = -1;
    for (let i = 0; i < 8; i++) {
      const r = consumeToken(b, 0n);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      b = r.bucket;
      rates.push(b.refill);
      if (r.restored) restoredAt = i;
    }
    expect(rates.slice(0, 5)).toEqual([600_000n, 700_000n, 800_000n, 900_000n, 1_000_000n]);
    expect(restoredAt).toBe(4);
    expect(rates[7]).toBe(T);
  });
});
