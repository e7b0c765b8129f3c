import { resolve } from 'node:path';
import type { Command } from 'commander';
import { exportBundle, removeActiveExports } from '../bundle/export.js';
import { parsePublicKey, publicPem } from '../bundle/keys.js';
import { verifyBundle } from '../bundle/verify.js';
import { OkitError } from '../errors.js';
import * as v from '../ledger/validate.js';
import { isTimestamp } from '../util/time.js';
import { bundlePath, collect, loadPublicKeys, loadSigningKey } from './bundle-io.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface ExportCliOptions {
  tenant: string;
  key: string;
  from?: string;
  to?: string;
  previous?: string;
  pubkey?: string[];
  out?: string;
  json?: boolean;
}

export async function runExport(opts: ExportCliOptions, io: Io): Promise<number> {
  const tenant = v.tenant(opts.tenant);
  for (const k of ['from', 'to'] as const)
    if (opts[k] !== undefined && !isTimestamp(opts[k])) throw new OkitError('INVALID_INPUT', `--${k} must be an RFC 3339 timestamp`);
  if (opts.previous && opts.from) throw new OkitError('INVALID_INPUT', '--from and --previous are exclusive');
  const key = await loadSigningKey(io, opts.key);
  if (opts.pubkey?.length && !opts.previous) throw new OkitError('INVALID_INPUT', '--pubkey is for verifying --previous: give --previous too');
  let previous = null;
  if (opts.previous) {
    // A chain is only as good as its links: the previous bundle is verified in full (signature,
    // completeness, chains), with the export key's public half unless --pubkey names others.
    const pubkeys = opts.pubkey?.length
      ? await loadPublicKeys(io, opts.pubkey)
      : [{ key: parsePublicKey(publicPem(key.publicKey), `public half of ${opts.key}`), label: `public half of ${opts.key}` }];
    const r = await verifyBundle(await bundlePath(io, opts.previous), { pubkeys });
    if (r.problems.some((p) => p.code === 'IO_ERROR')) throw new OkitError('IO_ERROR', r.problems[0]!.message);
    if (!r.ok || !r.manifest || !r.manifestSha256) {
      const listed = r.problems.slice(0, 5).map((p) => `${p.code}: ${p.message}`).join('; ');
      throw new OkitError('PREVIOUS_INVALID', `--previous ${opts.previous} does not verify (${listed}${r.problems.length > 5 ? '; …' : ''}); refusing to continue a chain from it (run okit verify on it; a bundle signed by another key needs --pubkey)`);
    }
    previous = { manifest: r.manifest, manifestSha256: r.manifestSha256 };
  }
  const outDir = resolve(io.cwd, opts.out ?? 'bundles');
  // SIGTERM/SIGINT: stop at the next batch, remove the work directory, exit 143/130. A second
  // signal removes it at once and exits.
  const ctl = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) {
      removeActiveExports();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    interrupted = sig;
    ctl.abort(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let r;
  try {
    r = await withDb(io, ({ pool }) => exportBundle(pool, { tenant, key, from: opts.from ?? null, to: opts.to ?? null, previous, outDir, signal: ctl.signal }));
  } catch (e) {
    if (interrupted) {
      io.err(`okit: export interrupted by ${interrupted}: nothing was written`);
      return interrupted === 'SIGINT' ? 130 : 143;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  if (opts.json) io.out(JSON.stringify({ path: r.path, sha256: r.sha256, bytes: r.bytes, manifest: r.manifest }));
  else {
    io.out(r.path);
    io.out(`sha256 ${r.sha256}`);
    io.out(`tenant ${tenant}, positions ${r.manifest.window.from_pos}..${r.manifest.window.to_pos}, as of ${r.manifest.as_of}: ${r.manifest.counts.jobs} jobs, ${r.manifest.counts.history} history rows, ${r.manifest.counts.throttles} throttle events, ${r.manifest.counts.queues ?? 0} queue events, ${r.manifest.counts.snapshots} snapshots`);
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
    .option('--previous <bundle>', 'continue exactly where this bundle ended (it is verified first)')
    .option('--pubkey <file>', "trusted key(s) for verifying --previous (default: the --key's public half); repeat for several", collect)
    .option('--out <dir>', 'output directory', 'bundles')
    .option('--json', 'print the result as JSON')
    .action(action(io, (o: ExportCliOptions) => runExport(o, io)));
}
