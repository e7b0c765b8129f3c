/**
 * The container and the lines, as an auditor meets them: v1 bundles still verify, re-packs by
 * other tools are refused naming the field (and saying what was not checked), GNU tar with the
 * documented flags recreates a v1 bundle exactly, hostile lines are refused with a reason, and
 * the two verifiers say what they checked.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENTRIES, entriesOf } from '../../src/bundle/format.js';
import { tarHeader } from '../../src/bundle/tar.js';
import { verifyBundle, type VerifyReport } from '../../src/bundle/verify.js';
import { canonicalize } from '../../src/util/canonical.js';
import { testKey, testPub, tmp } from './fixtures.js';
import { entries, rawTar, repack } from './tamper.js';

const SAMPLE = 'bundles/sample';
const GOLDEN = join(SAMPLE, readdirSync(SAMPLE).find((f) => f.endsWith('.tar'))!);
const V1 = 'test/fixtures/bundle-v1/okit-golden-1-80.tar';
const V2 = 'test/fixtures/bundle-v2/okit-golden-1-80.tar';
const golden = readFileSync(GOLDEN);
const v1 = readFileSync(V1);
const v2 = readFileSync(V2);
const codes = (r: VerifyReport) => r.problems.map((p) => p.code);
const msgs = (r: VerifyReport) => r.problems.map((p) => p.message).join('\n');

function extractTo(buf: Buffer): string {
  const d = tmp();
  for (const [name, body] of entries(buf)) writeFileSync(join(d, name), body);
  return d;
}

describe('format versions', () => {
  for (const [version, what, evidence] of [
    [1, 'the golden sample before node-tar', /exactly 7 regular files in order, canonical v1 ustar headers/],
    [2, 'the golden sample before queues.jsonl', /exactly 7 regular files in order, canonical v2 ustar headers/],
  ] as const) {
    it(`a v${version} bundle (${what}) still verifies, and every byte of it matters`, async () => {
      const old = version === 1 ? v1 : v2;
      const r = await verifyBundle(old, { pubkeys: testPub });
      expect(r.problems).toEqual([]);
      expect(r.manifest!.version).toBe(version);
      expect(r.evidence[0]).toMatch(evidence);
      const b = Buffer.from(old);
      for (let i = 0; i < b.length; i += 97) {
        b[i] ^= 0x01;
        const x = await verifyBundle(b, { pubkeys: testPub, failFast: true });
        b[i] ^= 0x01;
        expect(x.ok, `offset ${i}`).toBe(false);
      }
    });
  }

  it('the golden sample is v3: node-tar headers, eight entries with queues.jsonl', async () => {
    const r = await verifyBundle(golden, { pubkeys: testPub });
    expect(r.problems).toEqual([]);
    expect(r.manifest!.version).toBe(3);
    expect([...entries(golden).keys()]).toEqual([...ENTRIES]);
    expect(ENTRIES).toContain('queues.jsonl');
    expect(golden.subarray(0, 512).equals(tarHeader('manifest.json', entries(golden).get('manifest.json')!.length, parseInt(golden.toString('latin1', 136, 147), 8)))).toBe(true);
  });

  it('v1 headers with a v2 manifest (or the other way) are refused', async () => {
    const mixed = Buffer.concat([v1.subarray(0, 512), v2.subarray(512)]);
    const r = await verifyBundle(mixed, { pubkeys: testPub });
    expect(r.ok).toBe(false);
  });

  it('a v3 manifest without queues.jsonl, or a v2 manifest with it, is refused', async () => {
    // v2's entries re-signed under a v3 manifest: the entry list is v3's, so queues.jsonl is missing.
    const asV3 = repack(v2, testKey, { manifest: (x) => void (x.version = 3) });
    const r = await verifyBundle(asV3, { pubkeys: testPub });
    expect(r.ok).toBe(false);
    expect(codes(r).some((c) => c === 'MANIFEST_INVALID' || c === 'TAR_UNEXPECTED_ENTRY')).toBe(true);
    // The golden's eight entries under a v2 manifest: queues.jsonl is not a v2 entry.
    const asV2 = repack(golden, testKey, { manifest: (x) => void (x.version = 2) });
    const r2 = await verifyBundle(asV2, { pubkeys: testPub });
    expect(r2.ok).toBe(false);
    expect(codes(r2).some((c) => c === 'MANIFEST_INVALID' || c === 'TAR_UNEXPECTED_ENTRY')).toBe(true);
    expect(entriesOf(2)).not.toContain('queues.jsonl');
  });

  it('GNU tar with the documented flags recreates a v1 bundle byte for byte', () => {
    const d = extractTo(v1);
    const mtime = parseInt(v1.toString('latin1', 136, 147), 8);
    const out = join(tmp(), 'repacked.tar');
    const r = spawnSync('tar', ['--format=ustar', '--owner=0', '--group=0', '--numeric-owner', '--mode=0644', `--mtime=@${mtime}`, '-b1', '-cf', out, '-C', d, ...entriesOf(1)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out).equals(v1)).toBe(true);
  });
});

describe('tar refusals name the field, and say what was not checked', () => {
  it('a GNU tar re-pack with default flags: the field, what was expected, what was found', async () => {
    const d = extractTo(golden);
    const out = join(tmp(), 'gnu.tar');
    expect(spawnSync('tar', ['-cf', out, '-C', d, ...ENTRIES]).status).toBe(0);
    const r = await verifyBundle(readFileSync(out), { pubkeys: testPub });
    expect(r.ok).toBe(false);
    expect(codes(r)).toEqual(['TAR_BAD_HEADER']);
    expect(msgs(r)).toMatch(/^manifest\.json: header mode is '0000644' \+ NUL, expected '000644 ' \+ NUL/);
    expect(r.stoppedAtContainer).toBe(true);
    expect(r.notes.join('\n')).toMatch(/signature, the manifest and the contents were not checked/);
    // The CLI's verdict says it too, in good grammar.
    const cli = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', out, '--pubkey', join(SAMPLE, 'INSECURE-test-signing.pub')], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
    expect(cli.stdout).toMatch(/INVALID .*: 1 problem \(stopped at the tar container: signature and contents not checked\)/);
  });

  it('owner names, pax headers and a python re-pack are refused with the field', async () => {
    const d = extractTo(golden);
    const out = join(tmp(), 'owner.tar');
    const mtime = parseInt(golden.toString('latin1', 136, 147), 8);
    expect(spawnSync('tar', ['--format=ustar', '--owner=root', '--group=root', '--mode=0644', `--mtime=@${mtime}`, '-b1', '-cf', out, '-C', d, ...ENTRIES]).status).toBe(0);
    const r = await verifyBundle(readFileSync(out), { pubkeys: testPub });
    expect(msgs(r)).toMatch(/manifest\.json: header (mode|uid) is/);
    const pax = join(tmp(), 'pax.tar');
    expect(spawnSync('tar', ['--format=pax', '-cf', pax, '-C', d, ...ENTRIES]).status).toBe(0);
    const p = await verifyBundle(readFileSync(pax), { pubkeys: testPub });
    expect(codes(p)).toEqual(['TAR_ENTRY_TYPE']);
    expect(msgs(p)).toMatch(/entry 1 .* is a pax extended header: only regular files are allowed/);
    const py = join(tmp(), 'py.tar');
    const script = `import tarfile,sys\nt=tarfile.open(sys.argv[1],'w',format=tarfile.USTAR_FORMAT)\nfor n in sys.argv[3:]: t.add(sys.argv[2]+'/'+n, arcname=n)\nt.close()`;
    const pr = spawnSync('python3', ['-c', script, py, d, ...ENTRIES], { encoding: 'utf8' });
    expect(pr.status, pr.stderr).toBe(0);
    const q = await verifyBundle(readFileSync(py), { pubkeys: testPub });
    expect(codes(q)).toEqual(['TAR_BAD_HEADER']);
    expect(msgs(q)).toMatch(/header \w+ is .*, expected/);
  });

  it('a uname other than empty is named', async () => {
    const e = entries(golden);
    const mtime = parseInt(golden.toString('latin1', 136, 147), 8);
    const h = tarHeader('manifest.json', e.get('manifest.json')!.length, mtime);
    h.write('root', 265, 'ascii');
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of h) sum += x;
    h.write(sum.toString(8).padStart(6, '0') + ' \0', 148, 'ascii');
    const files = [...e.entries()].map(([name, body]) => ({ name, body }));
    const r = await verifyBundle(rawTar([{ ...files[0]!, header: h }, ...files.slice(1)], mtime), { pubkeys: testPub });
    expect(msgs(r)).toMatch(/uname is 'root', expected empty/);
  });
});

describe('hostile lines are refused with the reason, never a crash', () => {
  const e = entries(golden);
  const jsonl = (xs: unknown[]) => Buffer.from(xs.map((x) => canonicalize(x) + '\n').join(''));
  const thr = e.get('throttles.jsonl')!.toString('utf8');

  const cases: Array<[string, string, RegExp]> = [
    ['a lone surrogate', thr.replace('"data":{', '"data":{"s":"\\ud800",'), /lone surrogate/],
    ['an empty line', thr.replace('\n', '\n\n'), /line 2: an empty line/],
    ['a CRLF line end', thr.replace('\n', '\r\n'), /line 1: not RFC 8785 canonical/],
    ['no final newline', thr.slice(0, -1), /the last line does not end with \\n/],
    ['not JSON', thr.replace('{', '{{'), /line 1: not JSON/],
    ['a number spelled otherwise', thr.replace(/"pos":"(\d+)"/, '"pos":"$1","x":1.0'), /not RFC 8785 canonical/],
  ];
  for (const [what, text, re] of cases)
    it(`${what}`, async () => {
      const r = await verifyBundle(repack(golden, testKey, { data: { 'throttles.jsonl': Buffer.from(text, 'utf8') } }), { pubkeys: testPub });
      expect(r.ok).toBe(false);
      expect(codes(r)).toContain('LINE_NOT_CANONICAL');
      expect(msgs(r)).toMatch(re);
    });

  it('a line nested 100,000 deep (past any input limit) is handled without recursion', async () => {
    const t = JSON.parse(thr.split('\n')[0]!) as Record<string, unknown>;
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const r = await verifyBundle(repack(golden, testKey, { data: { 'throttles.jsonl': jsonl([{ ...t, data: { deep } }, ...thr.split('\n').slice(1, -1).map((l) => JSON.parse(l))]) } }), {
      pubkeys: testPub,
    });
    // Canonical and signed: it verifies; what matters is a verdict, not a stack overflow.
    expect(r.problems).toEqual([]);
  });
});

describe('scripts/verify-bundle.sh says what it does not check', () => {
  it('its VALID verdict lists the checks it does not make; a GNU re-pack that okit refuses is VALID only with that caveat', () => {
    const d = extractTo(golden);
    const out = join(tmp(), 'gnu.tar');
    expect(spawnSync('tar', ['-cf', out, '-C', d, ...ENTRIES]).status).toBe(0);
    const sh = spawnSync('sh', ['scripts/verify-bundle.sh', out, join(SAMPLE, 'INSECURE-test-signing.pub')], { encoding: 'utf8' });
    expect(sh.status).toBe(0);
    expect(sh.stdout).toMatch(/^VALID \(signature, key id and file hashes only; NOT checked: tar header bytes, canonical JSON, sort order, positions, hash chains, snapshots: run okit verify for those\)/m);
  });
});
