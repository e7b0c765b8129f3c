/**
 * The verifier's line checks run on line-aligned segments, in process or on worker threads,
 * and are applied in file order: the report (problems, their order and line numbers,
 * evidence) must not depend on where a segment boundary falls or which thread checked it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../src/bundle/format.js';
import { checkSegment, Splitter } from '../../src/bundle/segments.js';
import { verifyBundle, type VerifyReport } from '../../src/bundle/verify.js';
import { corpus } from './corpus.js';
import { testKey, testPub, tmp } from './fixtures.js';
import { entries, repack } from './tamper.js';

const golden = readFileSync('bundles/sample/okit-golden-1-128.tar');
const view = (r: VerifyReport) => ({ ok: r.ok, problems: r.problems, more: r.moreProblems, evidence: r.evidence, notes: r.notes });

describe('segments', () => {
  it('in process, across boundaries every few hundred bytes, and on worker threads: the same report', async () => {
    const dir = tmp();
    const cases = corpus(golden, true);
    expect(cases.length).toBeGreaterThan(60);
    for (const [i, c] of cases.entries()) {
      const whole = view(await verifyBundle(c.bundle, { pubkeys: testPub }));
      expect(whole.ok, c.name).toBe(false);
      expect(view(await verifyBundle(c.bundle, { pubkeys: testPub, segmentBytes: 300 })), c.name).toEqual(whole);
      // Workers take a while to start: every third case is enough to compare.
      if (i % 3) continue;
      const file = join(dir, 'b.tar');
      writeFileSync(file, c.bundle);
      expect(view(await verifyBundle(file, { pubkeys: testPub, segmentBytes: 700, workers: 2 })), c.name).toEqual(whole);
    }
  }, 240_000);

  it('the golden sample verifies on worker threads with the same evidence', async () => {
    const dir = tmp();
    const file = join(dir, 'g.tar');
    writeFileSync(file, golden);
    const a = await verifyBundle(golden, { pubkeys: testPub });
    const b = await verifyBundle(file, { pubkeys: testPub, workers: 2, segmentBytes: 1000 });
    expect(b.problems).toEqual([]);
    expect(view(b)).toEqual(view(a));
    expect(b.sha256).toBe(a.sha256);
  });

  it('names each defect on its own line, whatever segment it falls in', async () => {
    const e = entries(golden);
    const h = e.get('history.jsonl')!.toString('utf8').split('\n');
    // A blank line after line 10, \r\n on line 20, a space in line 30 (lines counted after the insertion).
    h.splice(10, 0, '');
    h[20] += '\r';
    h[30] = h[30]!.replace('{', '{ ');
    const b = repack(golden, testKey, { data: { 'history.jsonl': Buffer.from(h.join('\n')) } });
    for (const segmentBytes of [200, 4096, undefined]) {
      const r = await verifyBundle(b, { pubkeys: testPub, segmentBytes });
      const lines = r.problems.filter((p) => p.code === 'LINE_NOT_CANONICAL').map((p) => [p.line, p.message.replace(/^.*?: /, '')]);
      expect(lines).toEqual([
        [11, 'an empty line'],
        [21, 'not RFC 8785 canonical JSON (its canonical form differs from its bytes)'],
        [31, 'not RFC 8785 canonical JSON (its canonical form differs from its bytes)'],
      ]);
    }
  });

  it('a line over the limit is skipped without being held, and reading goes on', async () => {
    const e = entries(golden);
    const t = e.get('throttles.jsonl')!;
    const big = Buffer.concat([Buffer.from('{"a":"'), Buffer.alloc(3 * MAX_LINE_BYTES, 0x61), Buffer.from('"}\n')]);
    const b = repack(golden, testKey, { data: { 'throttles.jsonl': Buffer.concat([big, t]) } });
    const r = await verifyBundle(b, { pubkeys: testPub });
    expect(r.problems.map((p) => [p.code, p.line])).toEqual([['LINE_NOT_CANONICAL', 1]]);
    expect(r.problems[0]!.message).toBe(`throttles.jsonl line 1: longer than ${MAX_LINE_BYTES} bytes`);
    // The splitter never holds more than the limit and a segment.
    const seen: number[] = [];
    let skipped = 0;
    const sp = new Splitter((s) => seen.push(s.length), () => skipped++);
    for (let o = 0; o < big.length; o += 65536) sp.write(big.subarray(o, o + 65536));
    sp.write(t);
    sp.end();
    expect(skipped).toBe(1);
    expect(seen).toEqual([t.length]);
  });

  it('a segment checked alone: outcomes per line, facts of the good ones', () => {
    const e = entries(golden);
    const h = e.get('history.jsonl')!;
    const r = checkSegment('history.jsonl', Buffer.concat([h, Buffer.from('\n{"x":1}\n')]), 'golden', true);
    const n = h.toString().split('\n').length - 1;
    expect(r.lines).toBe(n + 2);
    expect(r.ok).toBe(n);
    expect([...r.kinds.subarray(n)]).toEqual([1, 2]);
    expect(r.whys).toEqual(['an empty line', 'unexpected field x']);
  });
});
