import { describe, expect, it } from 'vitest';
import { canonicalize, CanonicalJsonError, inexactNumber, isCanonical, numberProblem } from '../../src/util/canonical.js';

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

  it('accepts every finite double, written the ES6 way (number policy (a), docs/bundle-format.md §2)', () => {
    const vectors: Array<[number, string]> = [
      [2 ** 53, '9007199254740992'],
      [2 ** 60, '1152921504606847000'],
      [1e21, '1e+21'],
      [-1e21, '-1e+21'],
      [1e300, '1e+300'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
    ];
    for (const [n, s] of vectors) expect(canonicalize(n), String(n)).toBe(s);
  });

  it('refuses number text that would not travel exactly, naming it; accepts text whose value is the double', () => {
    for (const t of ['1e300', '1E300', '1.50', '0.1', '-0', '9007199254740992', '1e+21', '5e-324', '295147905179352830000', '1.0000000000000001e23'])
      expect(inexactNumber(`{"n":${t}}`), t).toBeNull();
    expect(inexactNumber('{"n":12345678901234567890}')).toMatch(/not exactly representable as a double: 12345678901234567890 would be read as 12345678901234567000/);
    expect(inexactNumber('[9007199254740993]')).toMatch(/9007199254740993 would be read as 9007199254740992/);
    expect(inexactNumber('[1e-400]')).toMatch(/would be read as 0/);
    expect(inexactNumber('[1e400]')).toMatch(/beyond the range of a double/);
    // Digits inside strings are not numbers.
    expect(inexactNumber('{"id":"12345678901234567890","e":"1e400"}')).toBeNull();
    expect(numberProblem('1.5')).toBeNull();
  });

  it('refuses lone surrogates in strings and keys (I-JSON), and says where', () => {
    expect(() => canonicalize({ a: ['ok', '\ud800'] })).toThrow(/\$\.a\[1\]: string contains a lone surrogate/);
    expect(() => canonicalize({ '\udc00x': 1 })).toThrow(/key contains a lone surrogate/);
    expect(() => canonicalize('\ude00\ud83d')).toThrow(CanonicalJsonError);
    expect(isCanonical('"\\ud800"')).toBe(false);
    expect(canonicalize('\ud83d\ude00')).toBe('"\ud83d\ude00"');
  });

  it('serialises any nesting depth without recursion', () => {
    const d = 200_000;
    const text = '['.repeat(d) + '{"a":' + '1' + '}' + ']'.repeat(d);
    expect(canonicalize(JSON.parse(text))).toBe(text);
    expect(isCanonical(text)).toBe(true);
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
