/**
 * The offline kit end to end: pack it, unpack it into a fresh directory, install it, and run
 * `okit demo` inside a network namespace with no interfaces but loopback (`unshare -n`), then
 * check the bundle it wrote with the auditors' shell script. Proves no step reaches the network.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { noNetwork } from '../helpers/netns.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-kit-'));
fs.chmodSync(work, 0o755);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('offline kit', () => {
  it('packs, installs and runs the demo with no network, ending with a verified bundle', () => {
    const pack = spawnSync('sh', [path.join(ROOT, 'scripts/pack-offline.sh'), work], {
      cwd: ROOT,
      env: { ...process.env, OKIT_PACK_SKIP_BUILD: '1' },
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(pack.status, pack.stderr + pack.stdout).toBe(0);
    const tarball = fs.readdirSync(work).find((f) => /^okit-offline-.*\.tar\.gz$/.test(f))!;
    expect(tarball).toBeDefined();
    expect(pack.stdout).toMatch(/sha256 [0-9a-f]{64}/);

    const unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    execFileSync('tar', ['-xzf', path.join(work, tarball), '-C', unpacked]);
    const kit = path.join(unpacked, tarball.replace(/\.tar\.gz$/, ''));
    for (const f of ['install.sh', 'SHA256SUMS', 'sbom.cdx.json', 'OFFLINE.md', 'dist/cli/main.js', 'dist/console/index.html', 'dist/console/app.js', 'dist/console/app.css', 'docs/prometheus/okit-rules.yml', 'docs/prometheus/okit-rules.test.yml'])
      expect(fs.existsSync(path.join(kit, f)), f).toBe(true);
    const sbom = JSON.parse(fs.readFileSync(path.join(kit, 'sbom.cdx.json'), 'utf8'));
    expect(sbom.bomFormat).toBe('CycloneDX');
    expect(sbom.components.map((c: { name: string }) => c.name)).toContain('pg');
    expect(sbom.components.map((c: { name: string }) => c.name)).toContain('prom-client');
    // The console's Preact is bundled into dist/console/app.js; the SBOM names it all the same.
    expect(sbom.components.map((c: { name: string }) => c.name)).toContain('preact');

    // Everything from here on runs in a namespace whose only interface is loopback.
    const prefix = path.join(work, 'prefix');
    const home = path.join(work, 'home');
    const script = [
      'set -e',
      `test "$(ip -o link show | grep -vc ': lo:')" = 0`,
      `sh ${kit}/install.sh ${prefix}`,
      `cd ${work}`,
      `OKIT_HOME=${home} ${prefix}/bin/okit demo --out ${work}/bundles --step-ms 40`,
    ].join('\n');
    const ns = noNetwork(['sh', '-c', script]);
    const run = spawnSync(ns.cmd, ns.args, { encoding: 'utf8', timeout: 240_000, env: { ...process.env, DATABASE_URL: '' } });
    expect(run.status, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/verify: valid/);
    expect(run.stdout).toMatch(/replay: identical/);

    const bundle = fs.readdirSync(path.join(work, 'bundles')).find((f) => f.endsWith('.tar'))!;
    const pub = fs.readdirSync(path.join(work, 'bundles')).find((f) => f.endsWith('.pub'));
    expect(bundle).toBeDefined();
    expect(pub).toBeDefined();
    const verify = noNetwork(['sh', path.join(kit, 'scripts/verify-bundle.sh'), path.join(work, 'bundles', bundle), path.join(work, 'bundles', pub!)]);
    const sh = spawnSync(verify.cmd, verify.args, { encoding: 'utf8' });
    expect(sh.status, sh.stdout + sh.stderr).toBe(0);
  }, 300_000);
});
