#!/usr/bin/env node
/**
 * Size run for audit bundle export: builds 1,000,000 hash-chained history rows (100,000 jobs
 * x 10 rows, interleaved in position order like concurrent workers) in a throwaway database,
 * then runs `okit export` under a fixed V8 heap cap and records wall time and peak RSS
 * (/usr/bin/time -v), then `okit verify` the same way. Not part of npm test.
 *
 *   npm run build && node scripts/bench/export-1m.mjs [--rows 1000000] [--cap-mb 128]
 *
 * Uses DATABASE_URL (a server it may create a database on) or a temporary embedded cluster.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres, tempHome } from '../../dist/db/embedded.js';
import { migrate } from '../../dist/db/migrate.js';
import { createPool } from '../../dist/db/pool.js';
import { rowHash } from '../../dist/ledger/chain.js';
import { project } from '../../dist/ledger/projection.js';
import { canonicalize } from '../../dist/util/canonical.js';
import { sha256Hex } from '../../dist/util/hash.js';
import { formatMicros, parseMicros } from '../../dist/util/time.js';
import { generateSigningKey, privatePem, publicPem } from '../../dist/bundle/keys.js';
import { writeFileSync } from 'node:fs';

const arg = (k, d) => {
  const i = process.argv.indexOf(k);
  return i === -1 ? d : Number(process.argv[i + 1]);
};
const ROWS = arg('--rows', 1_000_000);
const CAP = arg('--cap-mb', 128);
const PER_JOB = 10;
const JOBS = Math.ceil(ROWS / PER_JOB);
const GROUP = 1000; // jobs interleaved together
const T = 'bench';
const EPOCH = parseMicros('2025-12-04T12:00:00.000000Z');

let embedded;
let adminUrl = process.env.DATABASE_URL;
if (!adminUrl) {
  embedded = new EmbeddedPostgres(tempHome('okit-bench-'));
  await embedded.start();
  adminUrl = embedded.url();
}
const dbName = 'okit_bench_' + process.pid;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const u = new URL(adminUrl);
u.pathname = '/' + dbName;
const url = u.toString();
await migrate(url);
const pool = createPool(url, { max: 2 });

const uuid = (i) => {
  const h = sha256Hex('job' + i);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};
const PLAN = ['enqueued', 'claimed', 'progress', 'progress', 'progress', 'progress', 'progress', 'progress', 'progress', 'succeeded'];
function rowData(k, i) {
  if (k === 'enqueued') return { type: 'scan', run_id: null, max_attempts: 3, queue_position: i % 50 };
  if (k === 'claimed') return { attempt: 1, worker_id: 'w' + (i % 8), lease_expires_at: formatMicros(EPOCH + BigInt(i) * 1000n + 30_000_000n) };
  if (k === 'progress') return { phase: 'analyze', summary: 'Scanning image layers', items_done: i, items_total: 7 };
  return { result: { items: 7 } };
}
const STATES = { enqueued: [null, 'queued'], claimed: ['queued', 'running'], progress: ['running', 'running'], succeeded: ['running', 'succeeded'] };

const t0 = Date.now();
let pos = 0n;
for (let g = 0; g < JOBS; g += GROUP) {
  const ids = [];
  for (let j = g; j < Math.min(JOBS, g + GROUP); j++) ids.push(uuid(j));
  const hist = [];
  const chains = ids.map(() => []);
  for (let step = 0; step < PER_JOB; step++) {
    ids.forEach((id, k) => {
      pos++;
      const ev = PLAN[step];
      const prev = chains[k].at(-1);
      const base = {
        tenant: T, pos: String(pos), job_id: id, n: step + 1, at: formatMicros(EPOCH + pos * 1000n), event: ev,
        from_state: STATES[ev][0], to_state: STATES[ev][1], data: rowData(ev, step), prev_hash: prev ? prev.hash : null,
      };
      const row = { ...base, hash: rowHash(base) };
      chains[k].push(row);
      hist.push(row);
    });
  }
  const col = (f) => hist.map(f);
  const first = chains.map((c) => c[0]);
  const last = chains.map((c) => c.at(-1));
  await pool.query(
    `INSERT INTO okit.jobs (id, tenant, type, payload, payload_sha256, max_attempts, attempt, state, not_before, created_at, updated_at, history_n, last_hash)
     SELECT id, $2, 'scan', '{}'::jsonb, $3, 3, 1, 'succeeded', c, c, u, ${PER_JOB}, h FROM unnest($1::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[]) AS x(id, c, u, h)`,
    [ids, T, sha256Hex('{}'), first.map((r) => r.at), last.map((r) => r.at), last.map((r) => r.hash)],
  );
  await pool.query(
    `INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::int[], $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::text[])`,
    [col((r) => r.tenant), col((r) => r.pos), col((r) => r.job_id), col((r) => r.n), col((r) => r.at), col((r) => r.event), col((r) => r.from_state),
      col((r) => r.to_state), col((r) => canonicalize(r.data)), col((r) => r.prev_hash), col((r) => r.hash)],
  );
  const snaps = chains.map((c) => project(c));
  const s = (f) => snaps.map(f);
  await pool.query(
    `INSERT INTO okit.first_signal_snapshots (job_id, tenant, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions, diagnostics, source, history_n, history_hash, created_at, updated_at)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[], $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::text[], $12::int[], $13::text[], $14::timestamptz[], $15::timestamptz[])`,
    [s((x) => x.job_id), s((x) => x.tenant), s((x) => x.run_id), s((x) => x.kind), s((x) => x.phase), s((x) => x.summary), s((x) => x.eta_seconds),
      s((x) => (x.last_known_outcome === null ? null : canonicalize(x.last_known_outcome))), s((x) => (x.next_actions === null ? null : canonicalize(x.next_actions))),
      s((x) => canonicalize(x.diagnostics)), s((x) => x.source), s((x) => x.history_n), s((x) => x.history_hash), s((x) => x.created_at), s((x) => x.updated_at)],
  );
  if ((g / GROUP) % 10 === 0) process.stderr.write(`built ${pos} rows\n`);
}
await pool.query('INSERT INTO okit.ledger_heads (tenant, pos) VALUES ($1, $2)', [T, String(pos)]);
await pool.query('VACUUM ANALYZE');
await pool.end();
const buildSecs = (Date.now() - t0) / 1000;

const work = mkdtempSync(join(tmpdir(), 'okit-bench-out-'));
const key = generateSigningKey();
writeFileSync(join(work, 'k.key'), privatePem(key), { mode: 0o600 });
writeFileSync(join(work, 'k.pub'), publicPem(key.publicKey));

function timed(args) {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, `--max-old-space-size=${CAP}`, 'dist/cli/main.js', ...args], {
    encoding: 'utf8', env: { ...process.env, DATABASE_URL: url }, maxBuffer: 64 * 1024 * 1024,
  });
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(r.stderr)?.[1];
  return { code: r.status, rssMb: Math.round(rss / 1024), wall, out: r.stdout.split('\n').slice(-3).join(' | ') };
}
const ex = timed(['export', '--tenant', T, '--key', join(work, 'k.key'), '--out', work]);
const bundle = ex.out.split(' | ')[0]; // first stdout line is the path only when output is short
const path = spawnSync('sh', ['-c', `ls ${work}/*.tar`], { encoding: 'utf8' }).stdout.trim();
const bytes = path ? statSync(path).size : 0;
const ve = path ? timed(['verify', path, '--pubkey', join(work, 'k.pub')]) : null;
const result = {
  rows: Number(pos), jobs: JOBS, build_seconds: buildSecs, heap_cap_mb: CAP,
  export: { exit: ex.code, wall: ex.wall, peak_rss_mb: ex.rssMb }, bundle_bytes: bytes,
  verify: ve && { exit: ve.code, wall: ve.wall, peak_rss_mb: ve.rssMb, tail: ve.out },
};
void bundle;
console.log(JSON.stringify(result, null, 2));
rmSync(work, { recursive: true, force: true });
const a2 = new pg.Client({ connectionString: adminUrl });
await a2.connect();
await a2.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
await a2.end();
if (embedded) await embedded.destroy();
