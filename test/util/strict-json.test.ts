import { describe, expect, it } from 'vitest';
import { isNoncharacter, parseStrictJson, StrictJsonError } from '../../src/util/strict-json.js';

const P = (t: string, maxDepth = 64) => parseStrictJson(t, { maxDepth });
function refusal(t: string, maxDepth = 64): StrictJsonError {
  try {
    P(t, maxDepth);
  } catch (e) {
    expect(e).toBeInstanceOf(StrictJsonError);
    return e as StrictJsonError;
  }
  throw new Error(`accepted: ${t}`);
}

describe('strict I-JSON parser', () => {
  it('parses what JSON.parse parses, to the same value', () => {
    const samples = [
      '{}', '[]', '0', '-0', '1.5e-3', '"a"', 'true', 'false', 'null',
      ' {"a": [1, 2, {"b": null}], "c": "\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/", "d": -12.5E+2} ',
      '{"__proto__": {"x": 1}, "constructor": 2}',
      '[1e308, -1e308, 5e-324, 1e-400, 9007199254740993, 123456789012345678901234567890]',
      '"\u00e9 raw \ud83d\ude00 astral"',
    ];
    for (const s of samples) expect(P(s), s).toEqual(JSON.parse(s));
    const proto = P('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses what RFC 8259 refuses, with line and column', () => {
    for (const s of ['', ' ', '{', '[1,]', '{"a":1,}', "{'a':1}", '{"a" 1}', '01', '1.', '.5', '+1', 'NaN', 'Infinity', '"\t"', '"\\x41"', '"\\u12"', '[1 2]', '{"a":1}x', 'tru', '\ufeff{}', '"abc'])
      expect(refusal(s).reason, JSON.stringify(s)).toBe('syntax');
    const e = refusal('{\n  "a": [1,\n    2,, 3]}');
    expect([e.line, e.column]).toEqual([3, 7]);
    expect(e.message).toMatch(/line 3, column 7 \(\$\.a\[2\]\)/);
  });

  it('refuses duplicate keys, naming the key and where it is, also when spelled with escapes', () => {
    const e = refusal('{"type": "a", "payload": {"x": 1, "y": {"k": 1, "k": 2}}}');
    expect(e.reason).toBe('duplicate_key');
    expect(e.key).toBe('k');
    expect(e.path).toEqual(['payload', 'y', 'k']);
    expect(e.message).toMatch(/^duplicate key "k" at line 1, column 49 \(\$\.payload\.y\.k\)$/);
    expect(refusal('{"a": 1, "\\u0061": 2}').key).toBe('a');
    expect(P('[{"a": 1}, {"a": 2}]')).toEqual([{ a: 1 }, { a: 2 }]); // same key in sibling objects is fine
  });

  it('refuses lone surrogates (escaped or raw) and every noncharacter (escaped or raw)', () => {
    for (const s of ['"\\ud800"', '"\\udc00"', '"\\ud800x"', '"\\ud800\\u0041"', '"a\ud800"', '"\udc00"', '{"\\ud800": 1}']) expect(refusal(s).reason, s).toBe('lone_surrogate');
    for (const s of ['"\\ufffe"', '"\\uFFFF"', '"\ufffe"', '"\uffff"', '"\\ufdd0"', '"\ufdef"', '"\\ud83f\\udffe"', '"\udbff\udfff"', '{"\uffff": 1}'])
      expect(refusal(s).reason, s).toBe('noncharacter');
    const e = refusal('{"a": "ok", "b": "x\\uffff"}');
    expect(e.message).toMatch(/^noncharacter U\+FFFF at line 1, column 20 \(\$\.b\)$/);
    expect(P('"\\ufffd\\ufdcf\\ufdf0\\ud83f\\udffd"')).toBe('\ufffd\ufdcf\ufdf0\ud83f\udffd'); // neighbours are characters
    let n = 0;
    for (let cp = 0; cp <= 0x10ffff; cp++) if (isNoncharacter(cp)) n++;
    expect(n).toBe(66); // Unicode: 32 in U+FDD0..U+FDEF, 2 per plane
  });

  it('refuses numbers beyond a double, and nesting deeper than the limit, without recursion', () => {
    expect(refusal('[1e309]').reason).toBe('number_out_of_range');
    expect(refusal('{"n": -1e400}').path).toEqual(['n']);
    expect(P('['.repeat(64) + ']'.repeat(64))).toBeDefined();
    const deep = refusal('['.repeat(65) + ']'.repeat(65));
    expect(deep.reason).toBe('too_deep');
    expect(deep.message).toMatch(/^nested deeper than 64 levels at line 1, column 65/);
    // Far deeper than any call stack: refused at the limit, no RangeError.
    expect(refusal('{"payload":' + '['.repeat(200_000)).reason).toBe('too_deep');
    // And without a limit that bites, depth costs no stack either.
    expect(P('['.repeat(100_000) + ']'.repeat(100_000), 1e9)).toBeDefined();
  });

  it('reads a 256 KiB body quickly enough for the door', () => {
    const body = JSON.stringify({ type: 'x', payload: Array.from({ length: 2000 }, (_, i) => ({ id: i, s: 'é'.repeat(50), n: i * 1.5, b: i % 2 === 0 })) });
    expect(body.length).toBeGreaterThan(150_000);
    expect(P(body, 65)).toEqual(JSON.parse(body));
  });
});
