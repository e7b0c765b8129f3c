import { resolve } from 'node:path';
import type { Command } from 'commander';
import { replayBundle, type BundleRef } from '../bundle/replay.js';
import { verifyChain } from '../bundle/verify.js';
import { OkitError } from '../errors.js';
import { bundlePath, collect, loadPublicKeys } from './bundle-io.js';
import { action, EXIT, type Io } from './io.js';
import { printReport } from './verify.js';

export interface ReplayCliOptions {
  pubkey?: string[];
  previous?: string[];
  out?: string;
  into?: string;
  json?: boolean;
}

export async function runReplay(file: string, opts: ReplayCliOptions, io: Io): Promise<number> {
  const pubkeys = await loadPublicKeys(io, opts.pubkey);
  const path = await bundlePath(io, file);
  const previous = [];
  for (const p of opts.previous ?? []) previous.push(await bundlePath(io, p));
  if (opts.into !== undefined && !/^postgres(ql)?:\/\//.test(opts.into)) throw new OkitError('INVALID_INPUT', '--into takes a postgres:// URL');
  // Checked before the (long) verification; loaded only for --into, like the database modules below.
  if (opts.into !== undefined) (await import('../db/connect.js')).checkDatabaseUrl(opts.into, '--into');
  const { report: r, earlier } = await verifyChain(path, { pubkeys, previous });
  if (!r.ok || !r.manifest) {
    printReport(io, r, false);
    io.err('okit: replay refused: the bundle does not verify');
    return r.problems.some((p) => p.code === 'IO_ERROR') ? EXIT.USAGE : EXIT.CHECK_FAILED;
  }
  const current: BundleRef = { src: path, report: r };
  const res = await replayBundle(current, earlier, { out: opts.out ? resolve(io.cwd, opts.out) : undefined });
  let imported = null;
  if (opts.into) {
    // Only --into needs the database modules (replay alone starts without them).
    const [{ importVerified }, { migrate }, { createPool }] = await Promise.all([import('../bundle/import.js'), import('../db/migrate.js'), import('../db/pool.js')]);
    await migrate(opts.into);
    const pool = createPool(opts.into, { max: 2 });
    try {
      imported = await importVerified(pool, current);
    } finally {
      await pool.end();
    }
  }
  const ok = res.divergences.length === 0 && res.moreDivergences === 0;
  if (opts.json) io.out(JSON.stringify({ ok, ...res, snapshots: res.replayed, imported }));
  else {
    io.out(`verified ${r.label}: ${r.evidence.length} checks passed`);
    for (const d of res.divergences)
      io.out(`DIVERGED job ${d.job_id} at row n=${d.n} (pos ${d.pos}, ${d.event}): ${d.fields.map((f) => `${f.field} bundle=${String(f.bundle)} replay=${String(f.replay)}`).join('; ')}`);
    if (res.skipped.length) io.out(`not replayed: ${res.skipped.length} continued jobs whose earlier rows are in no supplied --previous bundle`);
    if (res.moreDivergences) io.out(`DIVERGED … and ${res.moreDivergences} more jobs (their first diverging event was not searched)`);
    io.out(`replayed ${res.replayed} jobs; compared ${res.compared} with snapshots.jsonl and jobs.jsonl: ${res.identical} identical, ${res.divergences.length + res.moreDivergences} diverged; ${res.open} jobs continue beyond the window (no snapshot)`);
    if (imported) io.out(`loaded into ${opts.into!.replace(/:[^:@/]+@/, ':***@')}: ${imported.jobs} jobs, ${imported.history} history rows, ${imported.throttles} throttle events, ${imported.queues} queue events, ${imported.snapshots} snapshots, ${imported.anchors} anchors`);
  }
  return ok ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command, io: Io): void {
  program
    .command('replay')
    .description("verify a bundle, re-project every job's history and compare with its snapshots; exit 0 identical, 1 diverged or invalid")
    .argument('<bundle>', 'the bundle (.tar)')
    .option('--pubkey <file>', 'trusted Ed25519 public key (SPKI PEM); repeat for several', collect)
    .option('--previous <bundle>', 'earlier bundles of the chain (to replay continued jobs); repeat', collect)
    .option('--out <file>', 'write the re-projected snapshots as JSONL')
    .option('--into <url>', 'load the bundle into this empty database (postgres:// URL)')
    .option('--json', 'machine-readable result')
    .action(action(io, (file: string, o: ReplayCliOptions) => runReplay(file, o, io)));
}
