// Fills a migrated database with one tenant's ledger of `rows` history rows, fast: jobs of four
// transitions each (enqueued, claimed, progress, succeeded, interleaved across 1,000 jobs at a
// time like concurrent workers), with the same data shapes, hash chain and projected snapshots
// the Ledger writes, loaded through CSV files and `psql \copy` (going through the Ledger would
// take hours at 1,000,000 rows). Shared by export.mjs and verify-replay.mjs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { rowHash } from '../../dist/ledger/chain.js';
import { project } from '../../dist/ledger/projection.js';
import { canonicalize } from '../../dist/util/canonical.js';
import { formatMicros, parseMicros } from '../../dist/util/time.js';
import { SIM_EPOCH } from '../../dist/ledger/simulate.js';

export const PSQL = process.env.PSQL ?? '/usr/bin/psql';
const HISTORY_COLS = 'tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash';
const JOB_COLS =
  'id, tenant, type, payload, payload_sha256, priority, max_attempts, attempt, state, not_before, created_at, updated_at, history_n, last_hash';
const SNAP_COLS =
  'job_id, tenant, run_id, kind, phase, summary, eta_seconds, last_known_outcome, next_actions, diagnostics, source, history_n, history_hash, created_at, updated_at';

const csv = (v) => {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) || s === '' ? `"${s.replace(/"/g, '""')}"` : s;
};
const line = (vals) => vals.map(csv).join(',') + '\n';
const uuid = (i) => {
  const h = createHash('sha256').update(`bench-job-${i}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

export function psql(url, command) {
  return execFileSync(PSQL, [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', command], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
}

/** Writes jobs/history/snapshot CSVs for `rows` history rows into `dir` and loads them. */
export function seedLedger(url, tenant, rows, dir) {
  const jobsN = Math.ceil(rows / 4);
  const files = { jobs: path.join(dir, 'jobs.csv'), history: path.join(dir, 'history.csv'), snaps: path.join(dir, 'snapshots.csv') };
  const fd = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, fs.openSync(f, 'w')]));
  const epoch = parseMicros(SIM_EPOCH);
  let pos = 0;
  let written = 0;
  const payload = canonicalize({ kind: 'bench' });
  const payloadSha = createHash('sha256').update(payload).digest('hex');
  for (let j0 = 0; j0 < jobsN; j0 += 1000) {
    const batch = [];
    for (let j = j0; j < Math.min(jobsN, j0 + 1000); j++) batch.push({ id: uuid(j), rows: [] });
    const out = { history: [], jobs: [], snaps: [] };
    for (let step = 0; step < 4; step++) {
      for (const b of batch) {
        if (written >= rows) break;
        pos++;
        written++;
        const at = formatMicros(epoch + BigInt(pos) * 1000n);
        const prev = b.rows[b.rows.length - 1] ?? null;
        const worker = `w${pos % 32}`;
        const [event, from, to, data] = [
          ['enqueued', null, 'queued', { type: 'bench', priority: 0, max_attempts: 5, run_id: null, source: null, payload_sha256: payloadSha, idempotency_key: null, not_before: at, queue_position: 1, last_known_outcome: null }],
          ['claimed', 'queued', 'running', { worker_id: worker, attempt: 1, lease_expires_at: formatMicros(epoch + BigInt(pos) * 1000n + 30_000_000n) }],
          ['progress', 'running', 'running', { worker_id: worker, phase: 'analyze', items_done: 1, items_total: 2 }],
          ['succeeded', 'running', 'succeeded', { worker_id: worker }],
        ][step];
        const base = { tenant, pos: String(pos), job_id: b.id, n: step + 1, at, event, from_state: from, to_state: to, data: JSON.parse(canonicalize(data)), prev_hash: prev ? prev.hash : null };
        const row = { ...base, hash: rowHash(base) };
        b.rows.push(row);
        out.history.push(line([tenant, row.pos, row.job_id, row.n, row.at, row.event, row.from_state, row.to_state, canonicalize(row.data), row.prev_hash, row.hash]));
      }
    }
    for (const b of batch) {
      if (b.rows.length === 0) continue;
      const last = b.rows[b.rows.length - 1];
      const first = b.rows[0];
      const attempt = b.rows.length >= 2 ? 1 : 0;
      const state = last.to_state;
      // A job cut short by the row budget stays where its last row left it (running needs a lease).
      const lease = state === 'running' ? ['w0', formatMicros(epoch + 10n ** 12n)] : [null, null];
      out.jobs.push(line([b.id, tenant, 'bench', payload, payloadSha, 0, 5, attempt, state, first.at, first.at, last.at, last.n, last.hash, ...lease]));
      const s = project(b.rows);
      out.snaps.push(
        line([s.job_id, s.tenant, s.run_id, s.kind, s.phase, s.summary, s.eta_seconds, s.last_known_outcome === null ? null : canonicalize(s.last_known_outcome), s.next_actions === null ? null : canonicalize(s.next_actions), canonicalize(s.diagnostics), s.source, s.history_n, s.history_hash, s.created_at, s.updated_at]),
      );
    }
    fs.writeSync(fd.history, out.history.join(''));
    fs.writeSync(fd.jobs, out.jobs.join(''));
    fs.writeSync(fd.snaps, out.snaps.join(''));
  }
  for (const f of Object.values(fd)) fs.closeSync(f);
  psql(url, `\\copy okit.jobs (${JOB_COLS}, lease_owner, lease_expires_at) FROM '${files.jobs}' WITH (FORMAT csv)`);
  psql(url, `\\copy okit.job_history (${HISTORY_COLS}) FROM '${files.history}' WITH (FORMAT csv)`);
  psql(url, `\\copy okit.first_signal_snapshots (${SNAP_COLS}) FROM '${files.snaps}' WITH (FORMAT csv)`);
  psql(url, `INSERT INTO okit.ledger_heads (tenant, pos) VALUES ('${tenant}', ${pos})`);
  psql(url, 'VACUUM ANALYZE');
  for (const f of Object.values(files)) fs.rmSync(f);
  return { rows: written, jobs: jobsN, lastPos: pos };
}

/**
 * Runs a command, sampling from /proc until it exits: its peak resident memory (VmHWM of the
 * process, all threads) and the CPU time of each of its threads (utime + stime, last value
 * seen; a thread's time is lost only for its last 20 ms). `cpu` is the sum over threads,
 * `busiest` the largest single thread's.
 */
export async function timed(cmd, args, opts = {}) {
  const { spawn } = await import('node:child_process');
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  let err = '';
  let peak = 0;
  const threads = new Map();
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const sample = () => {
    try {
      const s = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      peak = Math.max(peak, Number(/^VmHWM:\s+(\d+) kB/m.exec(s)?.[1] ?? 0) * 1024);
      for (const t of fs.readdirSync(`/proc/${child.pid}/task`)) {
        const st = fs.readFileSync(`/proc/${child.pid}/task/${t}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        threads.set(t, (Number(f[11]) + Number(f[12])) / 100); // clock ticks of 10 ms
      }
    } catch {
      /* exited, or a thread ended between the listing and the read */
    }
  };
  const timer = setInterval(sample, 20);
  const code = await new Promise((r) => child.on('exit', (c) => (sample(), r(c))));
  clearInterval(timer);
  const cpus = [...threads.values()];
  return {
    seconds: (performance.now() - t0) / 1000, peakRss: peak, code, out, err,
    cpu: cpus.reduce((a, b) => a + b, 0), busiest: Math.max(0, ...cpus),
  };
}

/** The median of numbers. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
