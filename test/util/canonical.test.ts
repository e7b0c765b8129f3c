import { describe, expect, it } from 'vitest';
import { canonicalize, CanonicalJsonError, isCanonical } from '../../src/util/canonical.js';

describe('canonicalize (RFC 8785)', () => {
  it('orders keys by UTF-16 code units, non-BMP included, recursively', () => {
    // RFC 8785 §3.2.3 sorting example: "\u20ac" (€), "\r", "\ufb33", "1", "\ud83d\ude00" (😀), "\u0080", "\u00f6".
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    const out = canonicalize(input);
    // Expected order from the RFC: \r, 1, \u0080, \u00f6, \u20ac, \ud83d\ude00, \ufb33 (the emoji's
    // high surrogate 0xd83d sorts before 0xfb33 although its code point is larger). Read the keys
    // from the text: JS objects would list the integer-like key "1" first.
    const keys = [...out.matchAll(/"([^"]*)":"/g)].map((m) => JSON.parse('"' + m[1] + '"') as string);
    expect(keys.map((k) => k.codePointAt(0)!.toString(16))).toEqual(['d', '31', '80', 'f6', '20ac', '1f600', 'fb33']);
    expect(canonicalize({ b: { d: 1, c: 2 }, a: [{ z: 1, y: 2 }] })).toBe('{"a":[{"y":2,"z":1}],"b":{"c":2,"d":1}}');
  });

  it('serialises numbers the ECMAScript way (RFC 8785 §3.2.2.3 vectors)', () => {
    const vectors: Array<[number, string]> = [
      [0, '0'],
      [-0, '0'],
      [1e-7, '1e-7'],
      [0.000001, '0.000001'],
      [333333333.3333333, '333333333.3333333'],
      [4.5, '4.5'],
      [2e-3, '0.002'],
      [5e-324, '5e-324'],
      [1.5e-10, '1.5e-10'],
      [123456789.125, '123456789.125'],
      [9007199254740991, '9007199254740991'],
      [-9007199254740991, '-9007199254740991'],
      [0.1 + 0.2, '0.30000000000000004'],
    ];
    for (const [n, s] of vectors) expect(canonicalize(n), String(n)).toBe(s);
  });

  it('refuses numbers of integer value beyond 2^53 (1e21, 1e30, ...): okit sends those as strings', () => {
    // A deliberate subset of RFC 8785 (which would print 1e+21): every double at or above 2^53 is
    // an integer that other JSON readers may round, so it must travel as a string.
    for (const n of [2 ** 53, 1e21, -1e21, 1e30, 1.7976931348623157e308]) expect(() => canonicalize(n), String(n)).toThrow(CanonicalJsonError);
  });

  it('escapes strings minimally (RFC 8785 §3.2.2.2)', () => {
    expect(canonicalize('\u20ac$\u000f\nA\'B"\\\\"/')).toBe('"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"');
    expect(canonicalize('\b\f\n\r\t\u0000\u001f\u007f')).toBe('"\\b\\f\\n\\r\\t\\u0000\\u001f\u007f"');
    expect(canonicalize('\ud83d\ude00')).toBe('"\ud83d\ude00"');
  });

  it('matches the RFC 8785 §3.2.4 worked example', () => {
    const input = JSON.parse('{"numbers": [333333333.33333329, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}');
    expect(canonicalize(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('refuses what JSON cannot carry exactly', () => {
    expect(() => canonicalize(10n)).toThrow(CanonicalJsonError);
    expect(() => canonicalize({ a: 2 ** 53 })).toThrow(/2\^53/);
    expect(() => canonicalize(NaN)).toThrow(CanonicalJsonError);
    expect(() => canonicalize([Infinity])).toThrow(CanonicalJsonError);
    expect(() => canonicalize(new Date(0))).toThrow(/plain objects/);
    expect(() => canonicalize(() => 1)).toThrow(CanonicalJsonError);
    expect(() => canonicalize([undefined])).toThrow(CanonicalJsonError);
    // undefined members are dropped, as JSON.stringify does.
    expect(canonicalize({ a: undefined, b: 1 })).toBe('{"b":1}');
  });

  it('isCanonical tells canonical text from other spellings of the same JSON', () => {
    expect(isCanonical('{"a":1,"b":[1,2]}')).toBe(true);
    expect(isCanonical('{"b":[1,2],"a":1}')).toBe(false);
    expect(isCanonical('{"a": 1}')).toBe(false);
    expect(isCanonical('{"a":1.0}')).toBe(false);
    expect(isCanonical('not json')).toBe(false);
  });
});
