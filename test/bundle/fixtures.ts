import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { parsePublicKey, publicPem, signingKeyFromSeed } from '../../src/bundle/keys.js';

/** The golden sample's insecure test key: seed = 32 bytes 0x01..0x20. */
export const GOLDEN_SEED_HEX = Buffer.from(Array.from({ length: 32 }, (_, i) => i + 1)).toString('hex');
export const GOLDEN = { seed: 7, jobs: 10, tenant: 'golden' }; // scripts/make-golden.sh uses the same
export const testKey = signingKeyFromSeed(Buffer.from(GOLDEN_SEED_HEX, 'hex'));
export const testPub = [{ key: parsePublicKey(publicPem(testKey.publicKey)), label: 'test.pub' }];
export const otherKey = signingKeyFromSeed(Buffer.alloc(32, 7));
export const otherPub = [{ key: parsePublicKey(publicPem(otherKey.publicKey)), label: 'other.pub' }];

// Every directory tmp() makes is removed when the test file ends.
const made: string[] = [];
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tmp(prefix = 'okit-bundle-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
