/**
 * Negative controls for the offline verifier: unsafe tar entries, tampered and re-signed
 * history (deleted, inserted, reordered, rewritten), keys, and --previous chains.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportBundle, type ExportResult } from '../../src/bundle/export.js';
import { rowHash } from '../../src/ledger/chain.js';
import type { HistoryRow, Job, Snapshot } from '../../src/ledger/types.js';
import { replay } from '../../src/bundle/replay.js';
import { tarHeader, END_BYTES } from '../../src/bundle/tar.js';
import { verifyBundle, type VerifyReport } from '../../src/bundle/verify.js';
import { simulate } from '../../src/ledger/simulate.js';
import { canonicalize } from '../../src/util/canonical.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { otherKey, otherPub, testKey, testPub, tmp } from './fixtures.js';
import { entries, lines, rawTar, repack } from './tamper.js';

const DIR = 'bundles/sample';
const golden = readFileSync(join(DIR, readdirSync(DIR).find((f) => f.endsWith('.tar'))!));
const codes = (r: VerifyReport) => new Set(r.problems.map((p) => p.code));
const verify = (b: Buffer, pubkeys = testPub) => verifyBundle(b, { pubkeys, collect: true });
const jsonl = (xs: unknown[]) => Buffer.from(xs.map((x) => canonicalize(x) + '\n').join(''));
const parse = <T>(b: Buffer) => lines(b).map((l) => JSON.parse(l) as T);

function header(name: string, size: number, type: string, mtime = 1764849629): Buffer {
  const h = tarHeader(name.length > 100 ? 'x' : name, size, mtime);
  if (name.length <= 100) h.fill(0, 0, 100).write(name, 0, 'utf8');
  h.write(type, 156, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

describe('unsafe or malformed tar input is rejected, never extracted', () => {
  const e = entries(golden);
  const files = [...e.entries()].map(([name, body]) => ({ name, body }));
  const mtime = parseInt(golden.toString('latin1', 136, 147), 8);
  const cases: Array<[string, () => Buffer, string]> = [
    ['symbolic link', () => rawTar([{ name: 'manifest.json', body: Buffer.alloc(0), header: header('manifest.json', 0, '2') }, ...files.slice(1)], mtime), 'TAR_ENTRY_TYPE'],
    ['hard link', () => rawTar([files[0]!, { name: 'manifest.sig', body: Buffer.alloc(0), header: header('manifest.sig', 0, '1') }, ...files.slice(2)], mtime), 'TAR_ENTRY_TYPE'],
    ['directory', () => rawTar([{ name: 'd/', body: Buffer.alloc(0), header: header('d/', 0, '5') }, ...files], mtime), 'TAR_ENTRY_TYPE'],
    ['pax extension header', () => rawTar([{ name: 'x', body: Buffer.alloc(0), header: header('x', 0, 'x') }, ...files], mtime), 'TAR_ENTRY_TYPE'],
    ['../ path', () => rawTar([{ name: '../manifest.json', body: files[0]!.body }, ...files.slice(1)], mtime), 'TAR_UNSAFE_PATH'],
    ['absolute path', () => rawTar([{ name: '/etc/manifest.json', body: files[0]!.body }, ...files.slice(1)], mtime), 'TAR_UNSAFE_PATH'],
    ['duplicate entry', () => rawTar([files[0]!, files[0]!, ...files.slice(1)], mtime), 'TAR_DUPLICATE'],
    ['unexpected entry', () => rawTar([files[0]!, { name: 'evil.sh', body: Buffer.from('x') }, ...files.slice(1)], mtime), 'TAR_UNEXPECTED_ENTRY'],
    ['oversized size field', () => { const b = Buffer.from(golden); const h = header('manifest.json', 0o77777777777, '0', mtime); h.copy(b, 0); return b; }, 'TAR_OVERSIZED'],
    ['bad checksum', () => { const b = Buffer.from(golden); b[0] = 0x4e; return b; }, 'TAR_BAD_CHECKSUM'],
    ['non-canonical mode', () => { const b = Buffer.from(golden); const h = tarHeader('manifest.json', e.get('manifest.json')!.length, mtime); h.write('0000755\0', 100, 'ascii'); h.fill(0x20, 148, 156); let s = 0; for (const x of h) s += x; h.write(s.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii'); h.copy(b, 0); return b; }, 'TAR_BAD_HEADER'],
    ['trailing garbage', () => Buffer.concat([golden, Buffer.from('garbage')]), 'TAR_TRAILING_DATA'],
    ['an extra zero block', () => Buffer.concat([golden, Buffer.alloc(512)]), 'TAR_TRAILING_DATA'],
    ['an entry after the last one', () => Buffer.concat([golden.subarray(0, golden.length - END_BYTES), header('evil', 0, '0', mtime), Buffer.alloc(END_BYTES)]), 'TAR_TRAILING_DATA'],
    ['truncated', () => golden.subarray(0, golden.length - 2000), 'TAR_TRUNCATED'],
    ['missing end blocks', () => golden.subarray(0, golden.length - END_BYTES), 'TAR_TRUNCATED'],
    ['empty input', () => Buffer.alloc(0), 'TAR_TRUNCATED'],
    ['missing entry', () => rawTar(files.slice(0, 6), mtime), 'TAR_MISSING_ENTRY'],
  ];
  for (const [what, make, code] of cases)
    it(`${what} → ${code}`, async () => {
      const r = await verify(make());
      expect(r.ok).toBe(false);
      expect([...codes(r)]).toContain(code);
    });
});

describe('tampered history re-signed with the right key is still caught', () => {
  const e = entries(golden);
  const hist = parse<HistoryRow>(e.get('history.jsonl')!);
  const rehash = (r: HistoryRow): HistoryRow => ({ ...r, hash: rowHash(r) });

  it('the untouched golden re-packed by the test helper verifies (the helper is faithful)', async () => {
    const r = await verify(repack(golden, testKey));
    expect(r.problems).toEqual([]);
  });

  it('a deleted history line: positions and chain', async () => {
    const r = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(hist.filter((_, i) => i !== 40)) } }));
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('POSITION_GAP');
    expect([...codes(r)].some((c) => c.startsWith('CHAIN_') || c.startsWith('JOB_') || c.startsWith('SNAPSHOT_'))).toBe(true);
  });

  it('an inserted line (a forged row with a valid hash) at a used position', async () => {
    const x = hist[40]!;
    const forged = rehash({ ...x, data: { ...x.data, forged: true } });
    const h = [...hist.slice(0, 41), forged, ...hist.slice(41)];
    const r = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(h) } }));
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('SORT_ORDER');
    expect(codes(r)).toContain('POSITION_DUPLICATE');
    expect(codes(r)).toContain('CHAIN_GAP');
  });

  it('an appended row that extends a chain correctly is caught by the job and snapshot heads', async () => {
    const jobs = parse<Job>(e.get('jobs.jsonl')!);
    const j = jobs[0]!;
    const last = hist.filter((h) => h.job_id === j.id).at(-1)!;
    const m = JSON.parse(e.get('manifest.json')!.toString()) as { window: { to_pos: string } };
    const pos = String(BigInt(m.window.to_pos) + 1n);
    const extra = rehash({ ...last, pos, n: last.n + 1, prev_hash: last.hash, event: 'canceled', from_state: 'running', to_state: 'canceled', data: {} });
    const r = await verify(
      repack(golden, testKey, { data: { 'history.jsonl': jsonl([...hist, extra]) }, manifest: (mm) => void (mm.window.to_pos = pos) }),
    );
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('JOB_HEAD_MISMATCH');
  });

  it('two reordered lines: sort order', async () => {
    const h = [...hist];
    [h[10], h[11]] = [h[11]!, h[10]!];
    const r = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(h) } }));
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('SORT_ORDER');
  });

  it("a rewritten row (hash recomputed) breaks the next row's link", async () => {
    const i = hist.findIndex((h, k) => k > 20 && hist.slice(k + 1).some((x) => x.job_id === h.job_id));
    const h = [...hist];
    h[i] = rehash({ ...h[i]!, data: { ...h[i]!.data, summary: 'forged' } });
    const r = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(h) } }));
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('CHAIN_LINK_BROKEN');
  });

  it('a consistent forgery of a last row passes the chain checks but replay diverges at that row', async () => {
    const jobs = parse<Job>(e.get('jobs.jsonl')!);
    const snaps = parse<Snapshot>(e.get('snapshots.jsonl')!);
    const i = hist.map((h) => h.event).lastIndexOf('succeeded');
    const orig = hist[i]!;
    const forged = rehash({ ...orig, data: { ...orig.data, result: { items: 999999 } } });
    const h = hist.map((x, k) => (k === i ? forged : x));
    const js = jobs.map((j) => (j.id === orig.job_id ? { ...j, last_hash: forged.hash } : j));
    const ss = snaps.map((s) => (s.job_id === orig.job_id ? { ...s, history_hash: forged.hash } : s));
    const r = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(h), 'jobs.jsonl': jsonl(js), 'snapshots.jsonl': jsonl(ss) } }));
    expect(r.problems).toEqual([]);
    const rp = replay(r.data!);
    expect(rp.divergences).toHaveLength(1);
    const d = rp.divergences[0]!;
    expect(d).toMatchObject({ job_id: orig.job_id, n: orig.n, pos: orig.pos, event: 'succeeded' });
    expect(d.fields.map((f) => f.field)).toEqual(['snapshot.last_known_outcome.result']);
  });

  it('replay names the first diverging event, not the last', async () => {
    const snaps = parse<Snapshot>(e.get('snapshots.jsonl')!);
    const target = snaps[3]!;
    const ss = snaps.map((s) => (s === target ? { ...s, diagnostics: { ...s.diagnostics, max_attempts: 99 } } : s));
    const r = await verify(repack(golden, testKey, { data: { 'snapshots.jsonl': jsonl(ss) } }));
    expect(r.problems).toEqual([]);
    const rp = replay(r.data!);
    expect(rp.divergences).toHaveLength(1);
    expect(rp.divergences[0]).toMatchObject({ job_id: target.job_id, n: 1, event: 'enqueued' });
    expect(rp.divergences[0]!.fields).toEqual([{ field: 'snapshot.diagnostics.max_attempts', bundle: '99', replay: String(target.diagnostics.max_attempts) }]);
  });

  it('an overlong line is refused once', async () => {
    const big = Buffer.concat([Buffer.from('{"a":"'), Buffer.alloc(1_100_000, 0x61), Buffer.from('"}\n')]);
    const r = await verify(repack(golden, testKey, { data: { 'throttles.jsonl': big } }));
    const p = r.problems.filter((x) => x.code === 'LINE_NOT_CANONICAL');
    expect(p).toHaveLength(1);
    expect(p[0]!.message).toMatch(/longer than/);
    expect(r.ok).toBe(false);
  });

  it('a line of another tenant, a non-canonical line', async () => {
    const h = hist.map((x, k) => (k === 5 ? { ...x, tenant: 'other' } : x));
    const r1 = await verify(repack(golden, testKey, { data: { 'history.jsonl': jsonl(h) } }));
    expect(codes(r1)).toContain('TENANT_MISMATCH');
    const text = e.get('throttles.jsonl')!.toString().replace('{', '{ ');
    const r2 = await verify(repack(golden, testKey, { data: { 'throttles.jsonl': Buffer.from(text) } }));
    expect(codes(r2)).toContain('LINE_NOT_CANONICAL');
  });
});

describe('signed but off-spec content is still refused', () => {
  const e = entries(golden);
  it('a manifest whose SHA256SUMS line count is wrong', async () => {
    const r = await verify(repack(golden, testKey, { manifest: (m) => void (m.files[0]!.lines = 99) }));
    expect(codes(r)).toContain('SUMS_MISMATCH');
  });

  it('an extra field named like a built-in object property', async () => {
    const jobs = parse<Record<string, unknown>>(e.get('jobs.jsonl')!).map((j, k) => (k === 0 ? { ...j, constructor: 1 } : j));
    const r = await verify(repack(golden, testKey, { data: { 'jobs.jsonl': jsonl(jobs) } }));
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.message).join('\n')).toMatch(/unexpected field constructor/);
  });

  it('a timestamp in a valid RFC 3339 form other than okit\'s (UTC Z, six fraction digits)', async () => {
    const t = parse<Record<string, unknown>>(e.get('throttles.jsonl')!).map((x, k) => (k === 0 ? { ...x, at: String(x.at).replace('Z', '+00:00') } : x));
    const r = await verify(repack(golden, testKey, { data: { 'throttles.jsonl': jsonl(t) } }));
    expect(r.ok).toBe(false);
    const m = await verify(repack(golden, testKey, { manifest: (mm) => void (mm.as_of = mm.as_of.replace('Z', '+00:00')) }));
    expect(m.ok).toBe(false);
  });
});

describe('keys', () => {
  it('an unknown key is refused; several --pubkey (rotation) accept the right one', async () => {
    const r = await verify(golden, otherPub);
    expect(r.ok).toBe(false);
    expect([...codes(r)]).toEqual(['KEY_UNKNOWN']);
    expect((await verify(golden, [...otherPub, ...testPub])).ok).toBe(true);
  });

  it('a bundle claiming one key id but signed by another is refused', async () => {
    const b = repack(golden, otherKey, { manifest: (m) => void (m.key_id = testKey.keyId) });
    const r = await verify(b, [...otherPub, ...testPub]);
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('SIGNATURE_INVALID');
  });

  it('an as_of that disagrees with the tar mtime is refused', async () => {
    const r = await verify(repack(golden, testKey, { manifest: (m) => void (m.as_of = '2030-01-01T00:00:00.000000Z') }));
    expect(codes(r)).toContain('TAR_MTIME_MISMATCH');
  });
});

describe('--previous chains', () => {
  let db: TestDb;
  const b: ExportResult[] = [];
  beforeAll(async () => {
    db = await freshDb();
    await simulate(db.pool, { seed: 99, jobs: 16, tenant: 'chain' });
    const out = tmp();
    let prev = null;
    for (const to of ['2025-12-04T12:00:08.000000Z', '2025-12-04T12:00:16.000000Z', null]) {
      const r = await exportBundle(db.pool, { tenant: 'chain', key: testKey, to, previous: prev, outDir: out });
      b.push(r);
      const v = await verifyBundle(r.path, { pubkeys: testPub });
      prev = { manifest: r.manifest, manifestSha256: v.manifestSha256! };
    }
  });
  afterAll(async () => db.drop());

  it('a complete chain verifies, and links every continued job to its earlier rows', async () => {
    const r = await verifyBundle(b[2]!.path, { pubkeys: testPub, previous: [b[1]!.path, b[0]!.path] });
    expect(r.problems).toEqual([]);
    expect(r.evidence.join('\n')).toMatch(/chain of 2 earlier bundles verified/);
    expect(r.evidence.join('\n')).toMatch(/[1-9]\d* continued jobs linked to previous bundles/);
  });

  it('a missing bundle in the chain is caught', async () => {
    const r = await verifyBundle(b[2]!.path, { pubkeys: testPub, previous: [b[0]!.path] });
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('PREVIOUS_GAP');
    expect(codes(r)).toContain('PREVIOUS_MISMATCH');
  });

  it('without --previous, a continuation verifies what it can and says what it did not check', async () => {
    const r = await verifyBundle(b[1]!.path, { pubkeys: testPub });
    expect(r.ok).toBe(true);
    expect(r.notes.join('\n')).toContain('PREVIOUS_NOT_CHECKED');
    expect(r.evidence.join('\n')).toMatch(/first link not checkable without earlier bundles/);
  });

  it('a re-signed earlier bundle with a job removed does not pass as the previous bundle', async () => {
    // Drop a continued job's rows from the first bundle (re-signed): its later rows no longer link.
    const first = readFileSync(b[0]!.path);
    const e = entries(first);
    const h = parse<HistoryRow>(e.get('history.jsonl')!);
    const second = parse<HistoryRow>(entries(readFileSync(b[1]!.path)).get('history.jsonl')!);
    const victim = second.find((x) => x.n > 1)!.job_id;
    expect(h.some((x) => x.job_id === victim)).toBe(true);
    const forgedFirst = repack(first, testKey, { data: { 'history.jsonl': jsonl(h.filter((x) => x.job_id !== victim)) } });
    const dir = tmp();
    const p = join(dir, 'first.tar');
    (await import('node:fs')).writeFileSync(p, forgedFirst);
    const r = await verifyBundle(b[1]!.path, { pubkeys: testPub, previous: [p] });
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('PREVIOUS_INVALID');
    expect(codes(r)).toContain('PREVIOUS_MISMATCH');
  });
});
