/**
 * `okit demo` (what `npm start` runs): the whole kit in one command. Embedded Postgres,
 * migrations, `okit serve` in-process, workers driving a workload through the HTTP API, one
 * job followed live exactly as `okit job status --watch` prints it, then a signed audit bundle
 * exported, verified and replayed, and a closing summary.
 */
import type { Command } from 'commander';
import { startServer, type RunningServer } from '../http/server.js';
import { createToken } from '../http/tokens.js';
import { portFree } from '../db/embedded.js';
import { OkitClient } from '../worker/client.js';
import { followJob } from '../worker/follow.js';
import { signalLine } from '../signals/signal.js';
import { JOBS, runWorkers, setUp, type DemoJob, type WorkerStats } from '../demo/workload.js';
import { bundleStep, type BundleReport } from '../demo/bundle.js';
import { withDb } from './context.js';
import { port as parsePort } from './serve.js';
import { action, EXIT, type Io } from './io.js';
import { OkitError } from '../errors.js';

export interface DemoOptions {
  keepServing?: boolean;
  port?: string;
  stepMs?: string;
  out?: string;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

export async function runDemo(opts: DemoOptions, io: Io, stop?: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
  const step = (n: number, text: string) => io.out(`[${n}/6 ${elapsed()}] ${text}`);
  const stepMs = Number(opts.stepMs ?? 120);
  if (!Number.isFinite(stepMs) || stepMs < 0 || stepMs > 5000) throw new OkitError('INVALID_INPUT', '--step-ms: must be 0..5000');
  if (opts.port !== undefined) parsePort(opts.port);
  // A fresh tenant per run keeps each demo's bundle to its own jobs.
  const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const tenant = `demo-${stamp}`;

  io.out('okit demo: a job ledger with first signals and signed audit bundles, on Postgres alone');
  return withDb(
    io,
    async ({ db, pool, ledger }) => {
      step(1, `database: ${db.embedded ? `embedded Postgres (data in ${db.embedded.dataDir})` : 'DATABASE_URL'}, migrations applied`);

      let port = opts.port !== undefined ? parsePort(opts.port) : 8080;
      if (opts.port === undefined && !(await portFree(8080))) port = 0;
      const srv: RunningServer = await startServer({ url: db.url, pool, ledger, host: '127.0.0.1', port, log: () => undefined });
      try {
        step(2, `server: okit serve on ${srv.baseUrl} (LISTEN ${srv.listener.ready ? 'up' : 'down'})`);
        const admin = await createToken(pool, { tenant, scope: 'admin', label: 'demo driver' });
        const worker = await createToken(pool, { tenant, scope: 'worker', label: 'demo workers' });
        const reader = await createToken(pool, { tenant, scope: 'read', label: 'demo follower' });
        const adminClient = new OkitClient({ url: srv.baseUrl, token: admin.token });
        const workerClient = new OkitClient({ url: srv.baseUrl, token: worker.token });
        const readClient = new OkitClient({ url: srv.baseUrl, token: reader.token });

        const sources = await setUp(ledger, tenant);
        step(3, `workload: ${JOBS.length} jobs for tenant ${tenant}, 3 workers over HTTP; advisories.example behind a 1-token bucket`);

        // Enqueue, and measure each job's time to first signal: enqueue call → first signal read.
        const jobs: DemoJob[] = [];
        for (const j of JOBS) {
          const start = performance.now();
          const { job } = await adminClient.enqueue({ type: j.type, payload: { behaviour: j.behaviour, target: j.label }, sourceId: sources[j.source] });
          const first = await readClient.firstSignal(job.id);
          const ttfs = performance.now() - start;
          jobs.push({ id: job.id, behaviour: j.behaviour, enqueuedAt: start, ttfsMs: first.status === 200 ? ttfs : null });
          await pool.query(
            `INSERT INTO okit.ttfs_events (ts, tenant, job_id, surface, event_type, ttfs_ms, cache_hit, signal_source, kind, phase)
             VALUES ($1, $2, $3, 'cli', 'signal.rendered', $4, false, $5, $6, $7)`,
            [new Date().toISOString(), tenant, job.id, Math.round(ttfs), first.source || 'snapshot', first.status === 200 ? first.signal.kind : null, first.status === 200 ? first.signal.phase : null],
          );
        }

        const followed = jobs[0]!;
        let signals = 0;
        const finished = async () => {
          const { rows } = await pool.query(
            `SELECT count(*)::int AS n FROM okit.jobs WHERE tenant = $1 AND state NOT IN ('succeeded', 'failed', 'dead_letter', 'canceled')`,
            [tenant],
          );
          return rows[0].n === 0;
        };
        let allDone = false;
        const stats: WorkerStats = { claims: 0, retries: 0, upstream429: 0 };
        const workers = [runWorkers(workerClient, stepMs, () => allDone, stats)];
        const watcher = (async () => {
          while (!allDone && !(allDone = await finished())) await new Promise((r) => setTimeout(r, 200));
        })();
        // A worker that fails must end the run (with its error), not leave the follower waiting.
        const stopFollow = new AbortController();
        const background = Promise.all([watcher, ...workers]);
        background.catch(() => {
          allDone = true;
          stopFollow.abort();
        });

        step(4, `following job ${followed.id} as \`okit job status ${followed.id} --watch\` prints it:`);
        const follow = await followJob(readClient, followed.id, {
          watch: true,
          waitSeconds: 2,
          out: (l) => io.out(`      ${l}`),
          onSignal: () => signals++,
          signal: stopFollow.signal,
        });
        io.out(`      time to first signal: ${ms(follow.ttfsMs ?? NaN)}; ${follow.requests} requests for ${signals} signals`);
        await background;

        const { rows: states } = await pool.query('SELECT state, count(*)::int AS n FROM okit.jobs WHERE tenant = $1 GROUP BY state ORDER BY state', [tenant]);
        const { rows: hist } = await pool.query(
          "SELECT count(*)::int AS n, count(*) FILTER (WHERE event = 'throttled')::int AS throttled FROM okit.job_history WHERE tenant = $1",
          [tenant],
        );
        const broken = jobs.find((j) => j.behaviour === 'broken')!;
        const brokenSignal = await readClient.firstSignal(broken.id);
        io.out(`      all jobs settled: ${states.map((r) => `${r.state}=${r.n}`).join(' ')}; ${hist[0].n} history rows, ${hist[0].throttled} throttled signals, ${stats.retries} retries, ${stats.upstream429} upstream 429`);
        if (brokenSignal.status === 200) {
          io.out(`      the failed job's signal (X-Signal-Source: ${brokenSignal.source}):`);
          io.out(`        ${signalLine(brokenSignal.signal)}`);
          for (const a of brokenSignal.signal.next_actions ?? []) io.out(`        next: ${a.label}${a.command ? ` (\`${a.command}\`)` : ''}`);
        }

        step(5, 'audit bundle: export, verify, replay');
        const bundle: BundleReport = await bundleStep({ io, pool, tenant, home: db.embedded?.home, out: opts.out });

        const ttfs = jobs.map((j) => j.ttfsMs).filter((x): x is number => x !== null);
        step(6, 'summary');
        io.out(`      jobs: ${jobs.length}   signals followed live: ${signals}   history rows: ${hist[0].n}`);
        io.out(`      time to first signal: p50 ${ms(pct(ttfs, 50))}, p95 ${ms(pct(ttfs, 95))} (enqueue → first signal, ${ttfs.length} jobs)`);
        io.out(`      bundle: ${bundle.path}`);
        io.out(`      sha256: ${bundle.sha256}`);
        io.out(`      verify: ${bundle.verify}   replay: ${bundle.replay}`);
        io.out(`      done in ${elapsed()}`);
        const ok = bundle.ok && follow.exitCode === 0;

        if (opts.keepServing) {
          io.out('');
          io.out(`serving on ${srv.baseUrl} until Ctrl-C. Try:`);
          io.out(`  export OKIT_URL=${srv.baseUrl} OKIT_TOKEN=${reader.token}`);
          io.out(`  curl -i -H "Authorization: Bearer $OKIT_TOKEN" $OKIT_URL/api/v1/orchestrator/jobs/${followed.id}/first-signal`);
          io.out(`  okit job status ${followed.id}`);
          await (stop ??
            new Promise<void>((resolve) => {
              process.once('SIGINT', () => resolve());
              process.once('SIGTERM', () => resolve());
            }));
        }
        return ok ? EXIT.OK : EXIT.CHECK_FAILED;
      } finally {
        await srv.close();
      }
    },
    { poolMax: 20 },
  );
}

export function register(program: Command, io: Io): void {
  program
    .command('demo')
    .description('run the whole kit once: Postgres, serve, workers, a job followed live, a signed bundle verified and replayed')
    .option('--keep-serving', 'leave the server up afterwards and print a URL and token to try')
    .option('--port <port>', 'port for the server (default 8080, or a free one if taken)')
    .option('--step-ms <ms>', 'how long each simulated work step takes', '120')
    .option('--out <dir>', 'where to write the bundle', 'bundles')
    .action(action(io, (o: DemoOptions) => runDemo(o, io)));
}
