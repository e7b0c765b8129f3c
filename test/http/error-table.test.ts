/**
 * Finding 10: the README's error tables list every code that can appear on the wire, and the
 * docs every code okit has. Codes are collected from the source, so a new code without a row
 * fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}
/** Codes a file can raise: `new OkitError('X'` (also across a line break) and `"code":"X"` in literal JSON. */
function codesIn(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/new OkitError\(\s*'([A-Z][A-Z0-9_]+)'/g)) out.add(m[1]!);
  for (const m of text.matchAll(/\\?"code\\?"\s*:\s*\\?"([A-Z][A-Z0-9_]+)\\?"/g)) out.add(m[1]!);
  return out;
}
/** The codes in a markdown table's first column: `| `X` |` or `| `X`, `Y` |`. */
function tableCodes(md: string): Set<string> {
  const out = new Set<string>();
  for (const line of md.split('\n')) {
    const first = /^\s*\|([^|]*)\|/.exec(line)?.[1] ?? '';
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) out.add(m[1]!);
  }
  return out;
}

it('every code the server can answer is in the README error table; every code at all is in a docs table', () => {
  const src = files(join(ROOT, 'src'));
  // What reaches the wire: the HTTP layer, the signal handlers, and the ledger behind them.
  const wireFiles = src.filter((f) => /src\/(http|signals)\//.test(f) || /src\/ledger\/(ledger|validate|states|throttle|rows)\.ts$/.test(f) || f.endsWith('src/errors.ts'));
  const wire = new Set<string>();
  for (const f of wireFiles) for (const c of codesIn(readFileSync(f, 'utf8'))) wire.add(c);
  wire.delete('LISTEN_FAILED'); // thrown by startServer() to its caller (okit serve), before any client
  const all = new Set<string>();
  for (const f of src) for (const c of codesIn(readFileSync(f, 'utf8'))) all.add(c);

  for (const c of ['INVALID_JSON', 'BAD_REQUEST', 'INTERNAL', 'LEASE_NOT_HELD', 'PAYLOAD_TOO_LARGE']) expect(wire, `the scan finds ${c}`).toContain(c);
  const readme = tableCodes(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  const ledgerDoc = tableCodes(readFileSync(join(ROOT, 'docs/ledger.md'), 'utf8'));
  expect([...wire].filter((c) => !readme.has(c)).sort(), 'wire codes missing from the README error table').toEqual([]);
  expect([...all].filter((c) => !readme.has(c) && !ledgerDoc.has(c)).sort(), 'codes in no docs table').toEqual([]);
});
