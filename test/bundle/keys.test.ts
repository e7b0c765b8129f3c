/**
 * Ed25519: the RFC 8032 §7.1 and Wycheproof vectors (test/fixtures/vectors/README.md), the
 * small-order keys under which a trivial signature verifies for any message (refused wherever
 * a key is read: okit and scripts/verify-bundle.sh), and key files that are not key files.
 */
import { spawnSync } from 'node:child_process';
import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyIdOf, parsePublicKey, publicKeyProblem, publicPem, sign, signingKeyFromSeed, verifySignature } from '../../src/bundle/keys.js';
import { verifyBundle } from '../../src/bundle/verify.js';
import { isOkitError } from '../../src/errors.js';
import { testKey, tmp } from './fixtures.js';
import { entries, rawTar } from './tamper.js';

const V = 'test/fixtures/vectors/ed25519';
const SAMPLE = 'bundles/sample';
const GOLDEN = join(SAMPLE, readdirSync(SAMPLE).find((f) => f.endsWith('.tar'))!);
const BIN = 'dist/cli/main.js';
const okit = (args: string[], timeout = 20_000) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout });
  return { code: r.status, out: r.stdout, err: r.stderr, signal: r.signal };
};

/** The eight canonical encodings of the points of order 1, 2, 4 and 8, then non-canonical ones. */
const SMALL_ORDER = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity (order 1)
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
];
const NON_CANONICAL = [
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p (= 0)
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1 (= 1, identity)
  '0100000000000000000000000000000000000000000000000000000000000080', // identity, x = 0 with the sign bit
];
const pemOf = (hex: string) => publicPem(Buffer.from(hex, 'hex'));

describe('Ed25519 test vectors', () => {
  it('RFC 8032 §7.1: seed → public key → signature, and the signature verifies', () => {
    const { vectors } = JSON.parse(readFileSync(join(V, 'rfc8032-7.1.json'), 'utf8')) as { vectors: Array<{ id: string; secret: string; public: string; message: string; signature: string }> };
    expect(vectors.length).toBe(5);
    for (const t of vectors) {
      const k = signingKeyFromSeed(Buffer.from(t.secret, 'hex'));
      expect(Buffer.from(k.publicKey).toString('hex'), t.id).toBe(t.public);
      const msg = Buffer.from(t.message, 'hex');
      expect(sign(k, msg).toString('hex'), t.id).toBe(t.signature);
      const pub = parsePublicKey(pemOf(t.public));
      expect(verifySignature(pub, msg, Buffer.from(t.signature, 'hex')), t.id).toBe(true);
      const bad = Buffer.from(t.signature, 'hex');
      bad[0] ^= 1;
      expect(verifySignature(pub, msg, bad), t.id).toBe(false);
    }
  });

  it('Wycheproof: every valid vector verifies, every invalid one is refused', () => {
    const w = JSON.parse(readFileSync(join(V, 'wycheproof_ed25519_test.json'), 'utf8')) as {
      testGroups: Array<{ publicKey: { pk: string }; tests: Array<{ tcId: number; msg: string; sig: string; result: string }> }>;
    };
    let n = 0;
    for (const g of w.testGroups) {
      let pub;
      try {
        pub = parsePublicKey(pemOf(g.publicKey.pk));
      } catch {
        pub = null; // a key okit refuses: nothing may verify under it
      }
      for (const t of g.tests) {
        n++;
        const ok = pub !== null && verifySignature(pub, Buffer.from(t.msg, 'hex'), Buffer.from(t.sig, 'hex'));
        expect(ok, `tcId ${t.tcId}`).toBe(t.result === 'valid');
      }
    }
    expect(n).toBe(151);
  });
});

describe('small-order public keys', () => {
  it('under the identity key a trivial signature verifies for any message with OpenSSL (why they must be refused)', () => {
    const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(SMALL_ORDER[0]!, 'hex')]);
    const sig = Buffer.concat([Buffer.from(SMALL_ORDER[0]!, 'hex'), Buffer.alloc(32)]);
    expect(cryptoVerify(null, Buffer.from('any manifest'), createPublicKey({ key: der, format: 'der', type: 'spki' }), sig)).toBe(true);
  });

  it('every small-order and non-canonical encoding is refused by parsePublicKey, with the reason', () => {
    for (const hex of [...SMALL_ORDER, ...NON_CANONICAL]) {
      expect(publicKeyProblem(Buffer.from(hex, 'hex')), hex).not.toBeNull();
      let err: unknown;
      try {
        parsePublicKey(pemOf(hex), 'k.pub');
      } catch (e) {
        err = e;
      }
      expect(isOkitError(err) && err.code, hex).toBe('KEY_INVALID');
    }
    expect(publicKeyProblem(Buffer.from(SMALL_ORDER[4]!, 'hex'))).toMatch(/small-order/);
    expect(publicKeyProblem(testKey.publicKey)).toBeNull();
  });

  it('a bundle forged under the identity key is refused by okit verify and by scripts/verify-bundle.sh', async () => {
    const e = entries(readFileSync(GOLDEN));
    const m = JSON.parse(e.get('manifest.json')!.toString('utf8')) as { key_id: string };
    const identity = Buffer.from(SMALL_ORDER[0]!, 'hex');
    m.key_id = keyIdOf(identity);
    const { canonicalize } = await import('../../src/util/canonical.js');
    const mb = Buffer.from(canonicalize(m));
    const sig = Buffer.concat([identity, Buffer.alloc(32)]);
    const mtime = parseInt(readFileSync(GOLDEN).toString('latin1', 136, 147), 8);
    const forged = rawTar([{ name: 'manifest.json', body: mb }, { name: 'manifest.sig', body: sig }, ...[...e.entries()].slice(2).map(([name, body]) => ({ name, body }))], mtime);
    const d = tmp();
    writeFileSync(join(d, 'forged.tar'), forged);
    writeFileSync(join(d, 'identity.pub'), pemOf(SMALL_ORDER[0]!));
    const v = okit(['verify', join(d, 'forged.tar'), '--pubkey', join(d, 'identity.pub')]);
    expect(v.code).toBe(2);
    expect(v.err).toMatch(/KEY_INVALID: .*identity\.pub: refused: a small-order point/);
    expect(v.out).not.toContain('VALID');
    const sh = spawnSync('sh', ['scripts/verify-bundle.sh', join(d, 'forged.tar'), join(d, 'identity.pub')], { encoding: 'utf8' });
    expect(sh.status).toBe(1);
    expect(sh.stdout).toMatch(/INVALID: .* small-order/);
    for (const hex of SMALL_ORDER.slice(1)) {
      writeFileSync(join(d, 'k.pub'), pemOf(hex));
      const r = spawnSync('sh', ['scripts/verify-bundle.sh', GOLDEN, join(d, 'k.pub')], { encoding: 'utf8' });
      expect(r.status, hex).not.toBe(0);
      expect(r.stdout + r.stderr, hex).not.toContain('VALID (');
    }
    // Nothing the library can be handed verifies the forgery either.
    expect((await verifyBundle(forged, { pubkeys: [] })).ok).toBe(false);
  });
});

describe('key files', () => {
  it('keys generate checks both names first and never leaves a half pair', () => {
    const d = tmp();
    writeFileSync(join(d, 'okit-signing.pub'), 'an old public key\n');
    const r = okit(['keys', 'generate', '--out', d]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/refusing to overwrite .*okit-signing\.pub/);
    expect(readdirSync(d)).toEqual(['okit-signing.pub']);
    expect(readFileSync(join(d, 'okit-signing.pub'), 'utf8')).toBe('an old public key\n');
    const d2 = tmp();
    writeFileSync(join(d2, 'okit-signing.key'), 'x');
    expect(okit(['keys', 'generate', '--out', d2]).code).toBe(2);
    expect(readdirSync(d2)).toEqual(['okit-signing.key']);
    const d3 = tmp();
    expect(okit(['keys', 'generate', '--out', d3]).code).toBe(0);
    expect(readdirSync(d3).sort()).toEqual(['okit-signing.key', 'okit-signing.pub']);
    expect(statSync(join(d3, 'okit-signing.key')).mode & 0o777).toBe(0o600);
  });

  it('a FIFO, a device, a directory or an oversized file as --key or --pubkey is refused at once', () => {
    const d = tmp();
    const fifo = join(d, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    writeFileSync(join(d, 'big.pub'), 'x'.repeat(100_000));
    mkdirSync(join(d, 'dir'));
    for (const bad of [fifo, '/dev/zero', join(d, 'dir'), join(d, 'big.pub')]) {
      const t0 = Date.now();
      const v = okit(['verify', GOLDEN, '--pubkey', bad], 10_000);
      expect(v.signal, `${bad} hung`).toBeNull();
      expect(v.code, bad).toBe(2);
      expect(v.err, bad).toMatch(/not a regular file|at most 8192 bytes|over 8192 bytes/);
      expect(Date.now() - t0).toBeLessThan(8_000);
      const x = okit(['export', '--tenant', 't', '--key', bad], 10_000);
      expect(x.signal, `${bad} hung`).toBeNull();
      expect(x.code, bad).toBe(2);
    }
    expect(existsSync(fifo)).toBe(true);
  });
});
