/**
 * The four commands end to end through the built binary (npm test builds first):
 * exit codes, key files, export → replay --into → export fixpoint, verify with networking off.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate } from '../../src/ledger/simulate.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { testKey, tmp } from './fixtures.js';
import { entries, repack } from './tamper.js';
import { noNetwork } from '../helpers/netns.js';

const BIN = 'dist/cli/main.js';
const SAMPLE = 'bundles/sample';
const GOLDEN = join(SAMPLE, readdirSync(SAMPLE).find((f) => f.endsWith('.tar'))!);
const PUB = join(SAMPLE, 'INSECURE-test-signing.pub');
const KEY = join(SAMPLE, 'INSECURE-test-signing.key');

function okit(args: string[], env: Record<string, string> = {}, prefix: string[] = []) {
  const cmd = prefix.length ? prefix[0]! : process.execPath;
  const argv = prefix.length ? [...prefix.slice(1), process.execPath, BIN, ...args] : [BIN, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('okit keys / export / verify / replay', () => {
  let db: TestDb;
  let target: TestDb;
  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error('run `npm run build` first (npm test does)');
    db = await freshDb();
    target = await freshDb();
    await simulate(db.pool, { seed: 5, jobs: 12, tenant: 'cli' });
  });
  afterAll(async () => {
    await db.drop();
    await target.drop();
  });

  it('keys generate writes a 0600 PKCS#8 key and an SPKI public key, prints the key id, never overwrites', () => {
    const d = tmp();
    const r = okit(['keys', 'generate', '--out', d, '--seed-hex', '0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`key id ${testKey.keyId}`);
    expect(statSync(join(d, 'okit-signing.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d, 'okit-signing.key'), 'utf8')).toBe(readFileSync(KEY, 'utf8'));
    expect(readFileSync(join(d, 'okit-signing.pub'), 'utf8')).toBe(readFileSync(PUB, 'utf8'));
    expect(okit(['keys', 'generate', '--out', d]).code).toBe(2);
    const fresh = tmp();
    const g = okit(['keys', 'generate', '--out', fresh]);
    expect(g.code).toBe(0);
    expect(g.out).toMatch(/key id [0-9a-f]{64}/);
    expect(g.out).not.toContain(testKey.keyId);
  });

  it('verify: 0 valid with one line of evidence per check, 1 invalid with codes, 2 usage or I/O', () => {
    const ok = okit(['verify', GOLDEN, '--pubkey', PUB]);
    expect(ok.code).toBe(0);
    for (const check of ['tar:', 'manifest:', 'key:', 'signature:', 'SHA256SUMS:', 'files:', 'lines:', 'positions:', 'chains:', 'jobs:', 'previous:'])
      expect(ok.out).toContain(`ok   ${check}`);
    const bad = tmp();
    const t = Buffer.from(readFileSync(GOLDEN));
    t[t.length - 1500] ^= 0x20;
    writeFileSync(join(bad, 'x.tar'), t);
    const inv = okit(['verify', join(bad, 'x.tar'), '--pubkey', PUB, '--json']);
    expect(inv.code).toBe(1);
    const j = JSON.parse(inv.out) as { ok: boolean; problems: Array<{ code: string }> };
    expect(j.ok).toBe(false);
    expect(j.problems.map((p) => p.code)).toContain('FILE_HASH_MISMATCH');
    expect(okit(['verify', GOLDEN]).code).toBe(2); // no --pubkey
    expect(okit(['verify']).code).toBe(2);
    expect(okit(['verify', 'nope.tar', '--pubkey', PUB]).code).toBe(2);
    expect(okit(['verify', GOLDEN, '--pubkey', 'nope.pub']).code).toBe(2);
    expect(okit(['verify', GOLDEN, '--pubkey', GOLDEN]).code).toBe(2); // not a PEM key
    expect(okit(['export', '--tenant', 'cli']).code).toBe(2); // no --key
  });

  it('verify works with networking disabled (a network namespace without interfaces)', () => {
    const probe = noNetwork(['true']);
    expect(spawnSync(probe.cmd, probe.args).status, 'unshare (network namespace) must be available').toBe(0);
    const ns = noNetwork([]);
    const r = okit(['verify', GOLDEN, '--pubkey', PUB], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' }, [ns.cmd, ...ns.args]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('VALID');
  });

  it('export → replay --into an empty database → export again gives the same bytes', () => {
    const out1 = tmp();
    const e1 = okit(['export', '--tenant', 'cli', '--key', KEY, '--out', out1], { DATABASE_URL: db.url });
    expect(e1.code, e1.err).toBe(0);
    const path = e1.out.split('\n')[0]!;
    expect(path.startsWith(out1)).toBe(true);
    expect(e1.out).toMatch(/sha256 [0-9a-f]{64}/);
    const snaps = join(tmp(), 'snaps.jsonl');
    const rp = okit(['replay', path, '--pubkey', PUB, '--out', snaps, '--into', target.url]);
    expect(rp.code, rp.out + rp.err).toBe(0);
    expect(rp.out).toMatch(/12 identical, 0 diverged/);
    expect(readFileSync(snaps, 'utf8')).toBe(entries(readFileSync(path)).get('snapshots.jsonl')!.toString('utf8'));
    const out2 = tmp();
    const e2 = okit(['export', '--tenant', 'cli', '--key', KEY, '--out', out2], { DATABASE_URL: target.url });
    expect(e2.code, e2.err).toBe(0);
    expect(readFileSync(e2.out.split('\n')[0]!).equals(readFileSync(path))).toBe(true);
    // --into refuses a database that is not empty.
    expect(okit(['replay', path, '--pubkey', PUB, '--into', target.url]).code).toBe(2);
  });

  it('replay exits 1 on an invalid bundle and on a diverging one, naming the job and event', () => {
    const d = tmp();
    const t = Buffer.from(readFileSync(GOLDEN));
    t[2000] ^= 1;
    writeFileSync(join(d, 'bad.tar'), t);
    const inv = okit(['replay', join(d, 'bad.tar'), '--pubkey', PUB]);
    expect(inv.code).toBe(1);
    expect(inv.err).toContain('replay refused');
    const e = entries(readFileSync(GOLDEN));
    const s = e.get('snapshots.jsonl')!.toString().replace(/"summary":"[^"]*"/, '"summary":"forged"');
    writeFileSync(join(d, 'div.tar'), repack(readFileSync(GOLDEN), testKey, { data: { 'snapshots.jsonl': Buffer.from(s) } }));
    const dv = okit(['replay', join(d, 'div.tar'), '--pubkey', PUB]);
    expect(dv.code).toBe(1);
    expect(dv.out).toMatch(/DIVERGED job [0-9a-f-]{36} at row n=\d+ \(pos \d+, \w+\): snapshot.summary bundle="forged"/);
  });
});
