import { resolve } from 'node:path';
import type { Command } from 'commander';
import { exportBundle } from '../bundle/export.js';
import { peekManifest } from '../bundle/verify.js';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { isTimestamp } from '../util/time.js';
import { bundlePath, loadSigningKey } from './bundle-io.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface ExportCliOptions {
  tenant: string;
  key: string;
  from?: string;
  to?: string;
  previous?: string;
  out?: string;
  json?: boolean;
}

export async function runExport(opts: ExportCliOptions, io: Io): Promise<number> {
  const tenant = v.tenant(opts.tenant);
  for (const k of ['from', 'to'] as const)
    if (opts[k] !== undefined && !isTimestamp(opts[k])) throw new OkitError('INVALID_INPUT', `--${k} must be an RFC 3339 timestamp`);
  if (opts.previous && opts.from) throw new OkitError('INVALID_INPUT', '--from and --previous are exclusive');
  const key = await loadSigningKey(io, opts.key);
  let previous = null;
  if (opts.previous) {
    const p = await peekManifest(await bundlePath(io, opts.previous));
    if (!p) throw new OkitError('INVALID_INPUT', `--previous ${opts.previous} is not a readable okit bundle`);
    previous = { manifest: p.manifest, manifestSha256: p.sha256 };
  }
  const outDir = resolve(io.cwd, opts.out ?? 'bundles');
  const r = await withDb(io, ({ pool }) => exportBundle(pool, { tenant, key, from: opts.from ?? null, to: opts.to ?? null, previous, outDir }));
  if (opts.json) io.out(JSON.stringify({ path: r.path, sha256: r.sha256, bytes: r.bytes, manifest: r.manifest }));
  else {
    io.out(r.path);
    io.out(`sha256 ${r.sha256}`);
    io.out(`tenant ${tenant}, positions ${r.manifest.window.from_pos}..${r.manifest.window.to_pos}, as of ${r.manifest.as_of}: ${r.manifest.counts.jobs} jobs, ${r.manifest.counts.history} history rows, ${r.manifest.counts.throttles} throttle events, ${r.manifest.counts.snapshots} snapshots`);
  }
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  program
    .command('export')
    .description('write a deterministic, signed audit bundle of one tenant from one consistent snapshot')
    .requiredOption('--tenant <tenant>', 'tenant to export')
    .requiredOption('--key <file>', 'Ed25519 private key (PKCS#8 PEM)')
    .option('--from <iso>', 'start at the first ledger position whose time is at or after this (first bundle only)')
    .option('--to <iso>', 'stop before the first ledger position whose time is at or after this')
    .option('--previous <bundle>', 'continue exactly where this bundle ended')
    .option('--out <dir>', 'output directory', 'bundles')
    .option('--json', 'print the result as JSON')
    .action(action(io, (o: ExportCliOptions) => runExport(o, io)));
}
