import type { Command } from 'commander';
import { verifyBundle, type VerifyReport } from '../bundle/verify.js';
import { bundlePath, collect, loadPublicKeys } from './bundle-io.js';
import { action, EXIT, type Io } from './io.js';

export interface VerifyCliOptions {
  pubkey?: string[];
  previous?: string[];
  json?: boolean;
}

export function printReport(io: Io, r: VerifyReport, json: boolean | undefined): void {
  if (json) {
    io.out(
      JSON.stringify({
        ok: r.ok, bundle: r.label, sha256: r.sha256, manifest_sha256: r.manifestSha256, manifest: r.manifest,
        evidence: r.evidence, problems: r.problems, more_problems: r.moreProblems, notes: r.notes,
      }),
    );
    return;
  }
  for (const e of r.evidence) io.out(`ok   ${e}`);
  for (const n of r.notes) io.out(`note ${n}`);
  for (const p of r.problems) io.out(`FAIL ${p.code}: ${p.message}`);
  if (r.moreProblems) io.out(`FAIL … and ${r.moreProblems} more problems`);
  const n = r.problems.length + r.moreProblems;
  io.out(r.ok ? `VALID ${r.label} (sha256 ${r.sha256})` : `INVALID ${r.label}: ${n} ${n === 1 ? 'problem' : 'problems'}${r.stoppedAtContainer ? ' (stopped at the tar container: signature and contents not checked)' : ''}`);
}

export async function runVerify(file: string, opts: VerifyCliOptions, io: Io): Promise<number> {
  const pubkeys = await loadPublicKeys(io, opts.pubkey);
  const path = await bundlePath(io, file);
  const previous = [];
  for (const p of opts.previous ?? []) previous.push(await bundlePath(io, p));
  const r = await verifyBundle(path, { pubkeys, previous });
  printReport(io, r, opts.json);
  if (r.problems.some((p) => p.code === 'IO_ERROR')) return EXIT.USAGE;
  return r.ok ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command, io: Io): void {
  program
    .command('verify')
    .description('verify an audit bundle offline (no database, no network); exit 0 valid, 1 invalid, 2 usage or I/O error')
    .argument('<bundle>', 'the bundle (.tar)')
    .option('--pubkey <file>', 'trusted Ed25519 public key (SPKI PEM); repeat for several', collect)
    .option('--previous <bundle>', 'an earlier bundle of the same chain; repeat for several (any order)', collect)
    .option('--json', 'machine-readable report')
    .action(action(io, (file: string, o: VerifyCliOptions) => runVerify(file, o, io)));
}
