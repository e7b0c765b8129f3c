/**
 * Test corpus: the golden sample with one line-level defect at a time (blank lines, `\r\n`,
 * spaces, invalid UTF-8, lone surrogates, overlong lines, reordered, deleted, repeated and
 * edited lines, missing final newline...), each re-packed and re-signed so that only the line
 * checks can catch it.
 */
import { DATA_FILES, type DataFile } from '../../src/bundle/format.js';
import { canonicalize } from '../../src/util/canonical.js';
import { testKey } from './fixtures.js';
import { entries, repack } from './tamper.js';

type Edit = (lines: Buffer[]) => Buffer[];

const text = (s: string) => Buffer.from(s, 'utf8');
const json = (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>;
const canon = (o: unknown) => text(canonicalize(o));

/** Line edits at index k (clamped to the file). */
const EDITS: Record<string, (k: number) => Edit> = {
  'blank line before': (k) => (ls) => [...ls.slice(0, k), text(''), ...ls.slice(k)],
  'two blank lines before': (k) => (ls) => [...ls.slice(0, k), text(''), text(''), ...ls.slice(k)],
  'a \\r line before': (k) => (ls) => [...ls.slice(0, k), text('\r'), ...ls.slice(k)],
  '\\r\\n ending': (k) => (ls) => ls.map((l, i) => (i === k ? Buffer.concat([l, text('\r')]) : l)),
  'a space': (k) => (ls) => ls.map((l, i) => (i === k ? Buffer.concat([text('{ '), l.subarray(1)]) : l)),
  'invalid UTF-8': (k) => (ls) => ls.map((l, i) => (i === k ? Buffer.concat([l.subarray(0, l.length - 2), Buffer.from([0xff]), l.subarray(l.length - 1)]) : l)),
  'a lone surrogate': (k) => (ls) => ls.map((l, i) => (i === k ? text(l.toString().replace(/"tenant":"/, '"tenant":"\\ud800')) : l)),
  'another tenant': (k) => (ls) => ls.map((l, i) => (i === k ? canon({ ...json(l), tenant: 'other' }) : l)),
  'unexpected field': (k) => (ls) => ls.map((l, i) => (i === k ? canon({ ...json(l), zzz: 1 }) : l)),
  'a missing field': (k) => (ls) => ls.map((l, i) => (i === k ? canon(Object.fromEntries(Object.entries(json(l)).slice(1))) : l)),
  'not JSON': (k) => (ls) => ls.map((l, i) => (i === k ? text('garbage') : l)),
  // (The last line swaps with the one before it: swapping it with nothing would change nothing.)
  'swapped with a neighbour': (k) => (ls) => {
    const o = k + 1 < ls.length ? k + 1 : k - 1;
    return ls.map((l, i) => (i === k ? (ls[o] ?? l) : i === o ? ls[k]! : l));
  },
  deleted: (k) => (ls) => ls.filter((_, i) => i !== k),
  repeated: (k) => (ls) => [...ls.slice(0, k + 1), ...ls.slice(k)],
  'an overlong line': (k) => (ls) => [...ls.slice(0, k), text(`{"a":"${'x'.repeat(1_100_000)}"}`), ...ls.slice(k)],
  'a line of exactly the limit': (k) => (ls) => [...ls.slice(0, k), text(`{"a":"${'x'.repeat(1024 * 1024 - 8)}"}`), ...ls.slice(k)],
};

/** Whole-file edits. */
const FILE_EDITS: Record<string, (b: Buffer) => Buffer> = {
  'no final newline': (b) => b.subarray(0, b.length - 1),
  'blank lines at the end': (b) => Buffer.concat([b, text('\n\n')]),
  'one blank line at the end': (b) => Buffer.concat([b, text('\n')]),
  'only a newline': () => text('\n'),
  empty: () => Buffer.alloc(0),
};

export interface Case {
  name: string;
  bundle: Buffer;
}

/** Every edit at the first, middle and last line of each file; `few`: at one line of each. */
export function corpus(golden: Buffer, few = false): Case[] {
  const e = entries(golden);
  const out: Case[] = [];
  for (const [fi, f] of DATA_FILES.entries()) {
    const body = e.get(f)!;
    const ls = body.toString('latin1').split('\n').slice(0, -1).map((l) => Buffer.from(l, 'latin1'));
    const all = [...new Set([0, Math.floor(ls.length / 2), ls.length - 1])].filter((k) => k >= 0);
    const at = few ? [all[fi % all.length]!] : all;
    const add = (name: string, data: Buffer) => out.push({ name: `${f}: ${name}`, bundle: repack(golden, testKey, { data: { [f]: data } as Partial<Record<DataFile, Buffer>> }) });
    for (const [name, edit] of Object.entries(EDITS))
      for (const k of at) {
        // (Megabyte lines once per file is enough when sampling.)
        if (few && /overlong|the limit/.test(name) && f !== 'history.jsonl') continue;
        const edited = edit(k)(ls);
        add(`${name} (line ${k + 1})`, Buffer.concat(edited.flatMap((l) => [l, text('\n')])));
      }
    for (const [name, edit] of Object.entries(FILE_EDITS)) add(name, edit(body));
  }
  return out;
}
