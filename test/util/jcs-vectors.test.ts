/**
 * RFC 8785 conformance against the reference data (test/fixtures/vectors/README.md has the
 * sources): the RFC author's test files, the RFC's Appendix B number samples, and the first
 * 100,000 lines of the es6testfile (every double serialised the ES6 way, hashed).
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalize, CanonicalJsonError, inexactNumber } from '../../src/util/canonical.js';

const V = 'test/fixtures/vectors/jcs';
const read = (p: string) => readFileSync(join(V, p));
const f64 = (hex: string) => {
  const b = Buffer.from(hex, 'hex');
  return b.readDoubleBE(0);
};

describe('RFC 8785 reference data', () => {
  it('canonicalises every cyberphone input to its expected output, byte for byte', () => {
    const names = readdirSync(join(V, 'cyberphone/input'));
    expect(names.length).toBe(6);
    for (const n of names) {
      const out = Buffer.from(canonicalize(JSON.parse(read(`cyberphone/input/${n}`).toString('utf8'))), 'utf8');
      expect(out.toString('utf8'), n).toBe(read(`cyberphone/output/${n}`).toString('utf8'));
      const hex = read(`cyberphone/outhex/${n.replace('.json', '.txt')}`).toString('ascii').replace(/\s+/g, '');
      expect(out.toString('hex'), n).toBe(hex);
    }
  });

  it('serialises the Appendix B samples as the RFC says, and refuses NaN and Infinity', () => {
    const ex = JSON.parse(read('rfc8785-examples.json').toString('utf8')) as { appendix_b: Array<[string, string | null, string]> };
    expect(ex.appendix_b.length).toBeGreaterThan(20);
    for (const [hex, want, what] of ex.appendix_b) {
      const d = f64(hex);
      if (want === null) expect(() => canonicalize(d), what).toThrow(CanonicalJsonError);
      else {
        expect(canonicalize(d), `${hex} ${what}`).toBe(want);
        // What canonical JSON writes is exact by the number policy, so it is accepted as text too.
        expect(inexactNumber(`[${want}]`), want).toBeNull();
      }
    }
  });

  it('the first 100,000 lines of es6testfile100m.txt hash to the published SHA-256', () => {
    const statics = (JSON.parse(read('es6testfile-static.json').toString('utf8')) as { static_u64: string[] }).static_u64.map(f64);
    const hashes = (JSON.parse(read('es6testfile-hashes.json').toString('utf8')) as { hashes: Record<string, string> }).hashes;
    // numgen.js: the static values, 2000 serial values from 0x0010000000000000, then the
    // non-zero finite doubles of an iterated SHA-256 (four per 32-byte block, little-endian).
    const serial = Array.from({ length: 2000 }, (_, i) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(0x0010000000000000n + BigInt(i));
      return b.readDoubleLE(0);
    });
    let block = Buffer.alloc(32);
    let pending: number[] = [];
    const next = (idx: number): number => {
      if (idx < statics.length) return statics[idx]!;
      if (idx < statics.length + serial.length) return serial[idx - statics.length]!;
      for (;;) {
        if (pending.length === 0) {
          block = createHash('sha256').update(block).digest();
          pending = [0, 8, 16, 24].map((o) => block.readDoubleLE(o));
        }
        const f = pending.shift()!;
        if (f !== 0 && Number.isFinite(f)) return f;
      }
    };
    const h = createHash('sha256');
    const u = Buffer.alloc(8);
    for (let i = 0; i < 100_000; i++) {
      const d = next(i);
      u.writeDoubleLE(d);
      h.update(`${u.readBigUInt64LE().toString(16)},${canonicalize(d)}\n`);
    }
    expect(h.digest('hex')).toBe(hashes['100000']);
  });
});
