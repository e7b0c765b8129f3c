/** Demo step 5: export the demo tenant's bundle, verify it offline and replay it. */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportBundle } from '../bundle/export.js';
import { generateSigningKey, parsePrivateKey, parsePublicKey, privatePem, publicPem } from '../bundle/keys.js';
import { replay } from '../bundle/replay.js';
import { verifyBundle } from '../bundle/verify.js';
import type { Pool } from '../db/pool.js';
import type { Io } from '../cli/io.js';

export interface BundleReport {
  ok: boolean;
  path: string;
  sha256: string;
  verify: string;
  replay: string;
}

/**
 * The demo signs with a key kept under OKIT_HOME/keys (created on first use); its public key
 * is written next to the bundle so an auditor (or scripts/verify-bundle.sh) can check it.
 */
export async function bundleStep(o: { io: Io; pool: Pool; tenant: string; home?: string; out?: string }): Promise<BundleReport> {
  const keyDir = join(o.home ?? join(tmpdir(), 'okit-demo'), 'keys');
  const keyFile = join(keyDir, 'okit-signing.key');
  let key;
  if (existsSync(keyFile)) key = parsePrivateKey(await readFile(keyFile, 'utf8'), keyFile);
  else {
    key = generateSigningKey();
    await mkdir(keyDir, { recursive: true, mode: 0o700 });
    await writeFile(keyFile, privatePem(key), { mode: 0o600 });
  }
  const outDir = resolve(o.io.cwd, o.out ?? 'bundles');
  const r = await exportBundle(o.pool, { tenant: o.tenant, key, outDir });
  await writeFile(join(outDir, 'okit-signing.pub'), publicPem(key.publicKey));
  const pub = parsePublicKey(publicPem(key.publicKey), 'okit-signing.pub');
  const v = await verifyBundle(r.path, { pubkeys: [{ key: pub, label: 'okit-signing.pub' }], collect: true });
  if (!v.ok || !v.data) return { ok: false, path: r.path, sha256: r.sha256, verify: `invalid (${v.problems.map((p) => p.code).join(', ')})`, replay: 'not run' };
  const rp = replay(v.data);
  return {
    ok: rp.divergences.length === 0,
    path: r.path,
    sha256: r.sha256,
    verify: `valid (${v.evidence.length} checks, key id ${key.keyId.slice(0, 16)}…)`,
    replay: rp.divergences.length === 0 ? `identical (${rp.identical} of ${rp.compared} snapshots)` : `diverged (${rp.divergences.length} jobs, first: ${rp.divergences[0]!.job_id} at n=${rp.divergences[0]!.n})`,
  };
}
