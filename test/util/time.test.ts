import { describe, expect, it } from 'vitest';
import { formatMicros, isTimestamp, normalizeTimestamp, parseMicros, secondsToMicros } from '../../src/util/time.js';

describe('time: bigint microseconds <-> RFC 3339', () => {
  it('round-trips microseconds exactly', () => {
    for (const s of ['2025-12-04T12:00:00.123456Z', '2025-12-04T12:00:00.000001Z', '1970-01-01T00:00:00.000000Z', '2038-01-19T03:14:08.999999Z']) {
      expect(formatMicros(parseMicros(s))).toBe(s);
    }
    expect(parseMicros('2025-12-04T12:00:00.123456Z') - parseMicros('2025-12-04T12:00:00.123455Z')).toBe(1n);
    for (const us of [0n, 1n, 1764849600123456n, 999999n]) expect(parseMicros(formatMicros(us))).toBe(us);
  });

  it('round-trips instants before 1970', () => {
    for (const us of [-1n, -999999n, -1000000n, -1000001n, -86400000000n + 7n]) expect(parseMicros(formatMicros(us))).toBe(us);
    expect(formatMicros(-1n)).toBe('1969-12-31T23:59:59.999999Z');
  });

  it('reads the text forms Postgres prints', () => {
    expect(normalizeTimestamp('2025-12-04 12:00:00.1+00')).toBe('2025-12-04T12:00:00.100000Z');
    expect(normalizeTimestamp('2025-12-04 12:00:00+00')).toBe('2025-12-04T12:00:00.000000Z');
    expect(normalizeTimestamp('2025-12-04 12:00:00.123456+00')).toBe('2025-12-04T12:00:00.123456Z');
    expect(normalizeTimestamp('2025-12-04 14:30:00.5+02:30')).toBe('2025-12-04T12:00:00.500000Z');
    expect(normalizeTimestamp('2025-12-04T07:00:00-05:00')).toBe('2025-12-04T12:00:00.000000Z');
  });

  it('refuses text that is not a real instant', () => {
    for (const bad of ['2025-12-04', 'yesterday', '2025-12-04T12:00:00', '2025-12-04T12:00:00.1234567Z', '2025-13-01T00:00:00Z', '2025-02-30T00:00:00Z', '2025-12-04T24:00:00Z', '2025-12-04T12:60:00Z', '2025-12-04T12:00:61Z', 42, null]) {
      expect(isTimestamp(bad), String(bad)).toBe(false);
    }
    expect(isTimestamp('2024-02-29T00:00:00Z')).toBe(true);
  });

  it('converts seconds to microseconds', () => {
    expect(secondsToMicros(1.5)).toBe(1500000n);
  });
});
