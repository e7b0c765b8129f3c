/**
 * A real Prometheus (Debian's package) scrapes a running `okit serve` (the CLI, as a process)
 * twice over: through the main port with a metrics token, and through --metrics-listen without
 * one. It evaluates docs/prometheus/okit-rules.yml, and recording-rule queries return the
 * values the workload implies. Prometheus listens on 127.0.0.1 only and scrapes only 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.js';
import { createToken } from '../../src/http/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { OKIT, ROOT } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { requireBinary, RULES } from '../helpers/prometheus.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a child and resolves once `pattern` appears in its stdout+stderr (or rejects on exit). */
function startChild(cmd: string, args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      const m = pattern.exec(out);
      if (m) resolve({ child, match: m, output: () => out });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${path.basename(cmd)} exited (${code}) before it was ready:\n${out}`)));
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(10_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

describe('a real Prometheus scrapes okit serve and evaluates the rules', () => {
  let db: TestDb;
  let dir: string;
  let okitServe: ChildProcess | undefined;
  let prometheus: ChildProcess | undefined;
  let prom: string;
  let readToken: string;
  let base: string;
  let metricsUrl: string;

  const query = async (q: string): Promise<PromResult[]> => {
    const r = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`);
    const b = (await r.json()) as { status: string; data: { result: PromResult[] } };
    expect(b.status).toBe('success');
    return b.data.result;
  };
  /** Polls a query until `ok` holds for its result; returns that result. */
  const eventually = async (q: string, ok: (r: PromResult[]) => boolean, ms = 45_000): Promise<PromResult[]> => {
    const t0 = Date.now();
    let last: PromResult[] = [];
    while (Date.now() - t0 < ms) {
      last = await query(q);
      if (ok(last)) return last;
      await sleep(250);
    }
    throw new Error(`${q} never met the condition; last result: ${JSON.stringify(last)}`);
  };

  beforeAll(async () => {
    const promBin = requireBinary('prometheus');
    db = await freshDb();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-prom-'));
    const ledger = new Ledger(db.pool);
    for (let i = 0; i < 3; i++) await ledger.enqueue('acme', { type: 'promtest' });
    readToken = (await createToken(db.pool, { tenant: 'acme', scope: 'read' })).token;
    const tokenFile = path.join(dir, 'okit-metrics.token');
    fs.writeFileSync(tokenFile, (await createToken(db.pool, { tenant: 'ops', scope: 'metrics' })).token, { mode: 0o600 });

    const s = await startChild(
      process.execPath,
      [OKIT, 'serve', '--host', '127.0.0.1', '--port', '0', '--metrics-listen', '127.0.0.1:0'],
      /listening on (http:\/\/127\.0\.0\.1:\d+)\n[^]*okit metrics on (http:\/\/127\.0\.0\.1:(\d+)\/metrics)/,
      { ...process.env, DATABASE_URL: db.url },
    );
    okitServe = s.child;
    base = s.match[1]!;
    metricsUrl = s.match[2]!;

    const promPort = await freePort();
    const cfg = path.join(dir, 'prometheus.yml');
    fs.writeFileSync(
      cfg,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(RULES)}`,
        'scrape_configs:',
        '  - job_name: okit',
        '    authorization:',
        '      type: Bearer',
        `      credentials_file: ${JSON.stringify(tokenFile)}`,
        '    static_configs:',
        `      - targets: ['${new URL(base).host}']`,
        '  - job_name: okit-loopback',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${s.match[3]}']`,
        '',
      ].join('\n'),
    );
    const p = await startChild(
      promBin,
      [`--config.file=${cfg}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=info'],
      /Server is ready to receive web requests/,
    );
    prometheus = p.child;
    prom = `http://127.0.0.1:${promPort}`;
  }, 120_000);

  afterAll(async () => {
    await stop(prometheus);
    await stop(okitServe);
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('both scrape jobs are up, on loopback', async () => {
    const up = await eventually('up', (r) => r.length === 2 && r.every((x) => x.value[1] === '1'));
    expect(up.map((x) => `${x.metric.job} ${x.metric.instance}`).sort()).toEqual([`okit ${new URL(base).host}`, `okit-loopback ${new URL(metricsUrl).host}`]);
    const targets = (await (await fetch(`${prom}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ scrapeUrl: string; health: string }> } };
    for (const t of targets.data.activeTargets) expect(new URL(t.scrapeUrl).hostname).toBe('127.0.0.1');
  });

  it('recording rules over the scraped data return the values the workload implies', async () => {
    // okit's queue depth, as the rule aggregates it over both scrape jobs (the same database).
    const waiting = await eventually('okit:jobs_waiting{type="promtest"}', (r) => r.length === 1);
    expect(Number(waiting[0]!.value[1])).toBe(3);
    expect(await query('okit_listen_connected')).toHaveLength(2);

    // Surfaces report: ci always 1.5 s (the (1, 1.5] bucket), ui always 6 s ((5, 7.5]), for as
    // long as it takes Prometheus to see the rate.
    const { rows } = await db.pool.query("SELECT id FROM okit.jobs WHERE type = 'promtest' LIMIT 1");
    const job = rows[0].id as string;
    let posting = true;
    const poster = (async () => {
      while (posting) {
        const r = await fetch(`${base}/api/v1/orchestrator/telemetry/ttfs`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${readToken}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({
            events: [
              { surface: 'ci', event_type: 'signal.rendered', ttfs_ms: 1500, job_id: job, kind: 'queued' },
              { surface: 'ci', event_type: 'signal.rendered', ttfs_ms: 1200, job_id: job, kind: 'queued' },
              { surface: 'ui', event_type: 'signal.rendered', ttfs_ms: 6000, job_id: job, kind: 'queued' },
            ],
          }),
        });
        expect(r.status).toBe(202);
        await sleep(200);
      }
    })();
    try {
      // histogram_quantile interpolates inside the bucket: 1 + 0.5 × 0.95 and 5 + 2.5 × 0.95.
      const p95 = await eventually('ttfs:latency_seconds:p95_5m', (r) => r.length === 2 && r.every((x) => Number.isFinite(Number(x.value[1]))));
      const by = Object.fromEntries(p95.map((x) => [x.metric.surface, Number(x.value[1])]));
      expect(by.ci).toBeCloseTo(1.475, 9);
      expect(by.ui).toBeCloseTo(7.375, 9);
      const compliance = await query('ttfs:slo:compliance');
      expect(Object.fromEntries(compliance.map((x) => [x.metric.surface, x.value[1]]))).toEqual({ ci: '1', ui: '0' });
      const burn = await query('ttfs:slo:burn_rate_5m');
      expect(Object.fromEntries(burn.map((x) => [x.metric.surface, Number(x.value[1])]))).toEqual({ ci: 0, ui: 20 });
      // And the SLO alert sees the ui breach (pending: it must last 5 minutes to fire).
      const alerts = await eventually('ALERTS{alertname="TtfsSloBreachP95"}', (r) => r.length > 0);
      expect(alerts.map((a) => [a.metric.surface, a.metric.alertstate])).toEqual([['ui', 'pending']]);
    } finally {
      posting = false;
      await poster;
    }
  });
});
