/** okit work's pure parts: the bounded line splitter and the report parser (issue 13). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineSplitter, MAX_LINE_BYTES, parseReport, resolveCommand } from '../../src/worker/command.js';

describe('LineSplitter', () => {
  it('a 10 MB line without a newline is cut at the limit and the rest skipped, not buffered', () => {
    const got: Array<[number, boolean]> = [];
    const s = new LineSplitter((l, cut) => got.push([l.length, cut]));
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    for (let i = 0; i < 160; i++) {
      s.write(chunk);
      // Never more than one line's limit held, whatever arrived.
      expect((s as unknown as { len: number }).len).toBeLessThanOrEqual(MAX_LINE_BYTES);
    }
    s.write(Buffer.from('\nnext line\r\n'));
    s.write(Buffer.from('tail'));
    s.end();
    expect(got).toEqual([
      [MAX_LINE_BYTES, true],
      [9, false],
      [4, false],
    ]);
  });

  it('splits lines across chunk boundaries', () => {
    const got: string[] = [];
    const s = new LineSplitter((l) => got.push(l));
    for (const c of ['{"pha', 'se":"a"}\n\nx', 'y\n']) s.write(Buffer.from(c));
    s.end();
    expect(got).toEqual(['{"phase":"a"}', '', 'xy']);
  });
});

describe('parseReport', () => {
  it('reads progress, result and upstream lines; everything else is log; bad reports say why', () => {
    expect(parseReport('{"phase":"analyze","items_done":3,"items_total":10,"summary":"s"}')).toEqual({ kind: 'progress', phase: 'analyze', report: { itemsDone: 3, itemsTotal: 10, summary: 's' } });
    expect(parseReport('{"result":{"n":1}}')).toEqual({ kind: 'result', result: { n: 1 } });
    expect(parseReport('{"upstream":{"status":429,"retry_after_seconds":30,"host":"h.example"}}')).toEqual({ kind: 'upstream', status: 429, retryAfterSeconds: 30, host: 'h.example' });
    for (const log of ['plain text', '{not json', '[1,2]', '"str"', '{"other":1}', 'null']) expect(parseReport(log)).toBeNull();
    expect(parseReport('{"phase":42}')).toBe('phase: must be a string');
    expect(parseReport('{"phase":"a","items_done":"3"}')).toBe('items_done: must be a number');
    expect(parseReport('{"result":[1]}')).toBe('result: must be a JSON object');
    expect(parseReport('{"upstream":{"status":"429"}}')).toBe('upstream.status: must be an integer HTTP status');
  });
});

describe('resolveCommand', () => {
  it('finds a name on PATH, refuses a missing or non-executable file', () => {
    expect(resolveCommand('sh', { PATH: '/usr/bin:/bin' })).toMatch(/\/sh$/);
    expect(() => resolveCommand('no-such-okit-cmd', { PATH: '/usr/bin' })).toThrow(expect.objectContaining({ code: 'COMMAND_NOT_FOUND' }));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'okit-cmd-'));
    const plain = path.join(dir, 'plain.sh');
    writeFileSync(plain, 'echo hi\n', { mode: 0o644 });
    expect(() => resolveCommand(plain)).toThrow(expect.objectContaining({ code: 'COMMAND_NOT_EXECUTABLE' }));
    expect(() => resolveCommand('plain.sh', { PATH: dir })).toThrow(expect.objectContaining({ code: 'COMMAND_NOT_EXECUTABLE' }));
    rmSync(dir, { recursive: true });
    expect(() => resolveCommand('')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });
});
