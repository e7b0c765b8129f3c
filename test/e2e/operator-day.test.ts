/**
 * An operator's day, end to end, with no library call: a real `okit serve` (a child process),
 * the `okit` commands an operator types (child processes, OKIT_URL and OKIT_TOKEN), and a
 * worker that speaks plain HTTP (fetch). Every step checks what the operator would look at.
 * The commands and their output are recorded as a transcript; the README's walkthrough is
 * checked against it (test/e2e/readme-walkthrough.test.ts reads the same transcript module).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { OKIT, ROOT, okit, type CliResult } from '../helpers/cli.js';
import { checkWalkthrough, type Call, type Step } from './walkthrough.js';

const API = '/api/v1/orchestrator';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

interface Serve {
  child: ChildProcess;
  base: string;
  exit: Promise<number | null>;
  stderr(): string;
}

function serve(databaseUrl: string): Promise<Serve> {
  const child = spawn(process.execPath, [OKIT, 'serve', '--port', '0'], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('okit serve did not start: ' + err)), 30_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1]!, exit, stderr: () => err });
      }
    });
    child.on('close', () => reject(new Error('okit serve exited: ' + err)));
  });
}

describe("an operator's day, through okit serve, the CLI and HTTP only", () => {
  let db: TestDb;
  let target: TestDb;
  let srv: Serve;
  let dir: string;
  const tok = { admin: '', worker: '', read: '' };
  /** Placeholders the transcript (and the README) use for the ids of the day. */
  const names = new Map<string, string>();
  const transcript: Step[] = [];
  const calls: Call[] = [];

  beforeAll(async () => {
    [db, target] = await Promise.all([freshDb(), freshDb()]);
    dir = mkdtempSync(join(tmpdir(), 'okit-day-'));
    srv = await serve(db.url);
  });
  afterAll(async () => {
    if (srv && srv.child.exitCode === null) {
      srv.child.kill('SIGTERM');
      await Promise.race([srv.exit, new Promise((r) => setTimeout(r, 10_000))]);
      if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([db?.drop(), target?.drop()]);
  });

  const name = (placeholder: string, value: string) => {
    names.set(value, placeholder);
    return value;
  };
  /** As the operator would type it: the day's ids as placeholders, files relative to where they work. */
  const display = (text: string) => {
    let t = text;
    for (const [value, placeholder] of [...names].sort((a, b) => b[0].length - a[0].length)) t = t.replaceAll(value, placeholder);
    return t.replaceAll(dir + '/', '');
  };
  const SHOWN_TOKEN = { admin: [], worker: ['OKIT_TOKEN=$WORKER_TOKEN'], read: ['OKIT_TOKEN=$READ_TOKEN'] } as const;
  /** Runs `okit …` against the server as the operator (admin token unless told), records it, expects exit `code`. */
  async function op(args: string[], opts: { as?: keyof typeof tok; code?: number } = {}): Promise<CliResult> {
    const as = opts.as ?? 'admin';
    const r = await okit(args, { OKIT_URL: srv.base, OKIT_TOKEN: tok[as] });
    expect(r.code, `okit ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(opts.code ?? 0);
    transcript.push({ args: args.map(display), env: [...SHOWN_TOKEN[as]], stdout: display(r.stdout) });
    return r;
  }
  /** Runs `okit …` on the server host (the database; no token), records it. */
  async function host(args: string[], databaseUrl?: string): Promise<CliResult> {
    const r = await okit(args, { DATABASE_URL: databaseUrl ?? db.url });
    expect(r.code, `okit ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
    transcript.push({ args: args.map(display), env: databaseUrl ? [`DATABASE_URL=${display(databaseUrl)}`] : [], stdout: display(r.stdout) });
    return r;
  }
  /** A worker's HTTP call (plain fetch, as a worker in any language would), recorded. */
  async function http(method: string, path: string, body?: unknown, token = tok.worker): Promise<{ status: number; json: any }> {
    const res = await fetch(srv.base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    calls.push({ method, path: display(path) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }
  const claim = (types: string[], workerId = 'worker-1') => http('POST', `${API}/workers/claim`, { worker_id: workerId, types, lease_seconds: 60 });
  const signalOf = async (id: string) => (await http('GET', `${API}/jobs/${id}/first-signal`, undefined, tok.read)).json;
  const rows = (out: string) => out.trimEnd().split('\n').slice(1);

  it('runs the day', async () => {
    // ---------------------------------------------------------------- tokens (on the server host)
    for (const scope of ['admin', 'worker', 'read'] as const) {
      const r = await host(['tokens', 'create', '--tenant', 'acme', '--scope', scope]);
      tok[scope] = r.stdout.trim().split('\n')[0]!;
      expect(tok[scope]).toMatch(/^okit_[A-Za-z0-9_-]{43}$/);
    }

    // ---------------------------------------------------------------- a source, its throttle, a signature
    const src = await op(['sources', 'add', '--name', 'registry', '--host', 'registry.example']);
    expect(src.stdout).toMatch(/^ID\s+NAME\s+HOST\s+CREATED\n\S+\s+registry\s+registry\.example\s+yes\n$/);
    const sourceId = name('$SOURCE', rows(src.stdout)[0]!.split(/\s+/)[0]!);
    const thr = await op(['throttle', 'set', 'registry.example', '--capacity', '20', '--refill', '5']);
    expect(thr.stdout).toMatch(/registry\.example\s+20\s+20\s+5\s+5\s+-\s+-/);
    const sig = await op(['signatures', 'add', '--type', 'scan', '--error-code', 'E_LAYER', '--field', 'image=^legacy/', '--cause', 'legacy image format', '--action', 'rebuild the image', '--mttr', '300']);
    const signatureId = name('$SIGNATURE', (sig.stdout.match(UUID) ?? [])[0]!);
    expect(signatureId).toBeDefined();
    const run = await op(['run', 'create', '--source', sourceId]);
    const runId = name('$RUN', (run.stdout.match(UUID) ?? [])[0]!);

    // ---------------------------------------------------------------- 50 jobs from a JSONL file
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      const image = i === 7 ? 'legacy/billing:2019' : `apps/svc-${i}:1.${i}`;
      lines.push(JSON.stringify({ type: 'scan', payload: { image }, source_id: sourceId, run_id: runId, max_attempts: i === 7 ? 1 : 3, idempotency_key: `scan-${i}` }));
    }
    for (let i = 0; i < 10; i++) lines.push(JSON.stringify({ type: 'report', payload: { week: i }, run_id: runId, idempotency_key: `report-${i}` }));
    writeFileSync(join(dir, 'jobs.jsonl'), lines.join('\n') + '\n');
    const enq = await op(['job', 'enqueue', '--file', join(dir, 'jobs.jsonl')], { as: 'worker' });
    const enqRows = rows(enq.stdout);
    expect(enqRows.length).toBe(50);
    expect(enqRows.every((l) => /\byes\b/.test(l))).toBe(true);
    const ids = enqRows.map((l) => l.match(UUID)![0]);
    const legacy = name('$LEGACY_JOB', ids[7]!);
    const report0 = name('$REPORT_JOB', ids[40]!);
    // The same file again creates nothing (idempotency keys).
    const again = await okit(['job', 'enqueue', '--file', join(dir, 'jobs.jsonl')], { OKIT_URL: srv.base, OKIT_TOKEN: tok.worker });
    expect(again.code).toBe(0);
    expect(rows(again.stdout).every((l) => /\bno\b/.test(l))).toBe(true);

    // ---------------------------------------------------------------- pause, then resume a type
    const pause = await op(['queue', 'pause', 'report', '--reason', 'report store maintenance']);
    expect(pause.stdout).toMatch(/report/);
    expect(await signalOf(report0)).toMatchObject({ kind: 'blocked', summary: expect.stringMatching(/^Paused by token:\S+: report store maintenance$/) });
    const ql = await op(['queue', 'list']);
    expect(ql.stdout).toMatch(/report\s.*report store maintenance/);
    expect((await claim(['report'])).json).toEqual({ job: null }); // claims skip a paused type
    await op(['job', 'get', report0], { as: 'read' });
    await op(['queue', 'resume', 'report']);
    expect((await signalOf(report0)).kind).toBe('queued');
    const rc = await claim(['report']);
    expect(rc.status).toBe(200);
    expect(rc.json.job.type).toBe('report');
    const rl = { worker_id: 'worker-1', lease_token: rc.json.lease_token };
    expect((await http('POST', `${API}/jobs/${rc.json.job.id}/complete`, { ...rl, result: { pages: 3 } })).status).toBe(200);

    // ---------------------------------------------------------------- one job dead-letters; it matches the signature
    let dead: { job: { id: string }; lease_token: string } | null = null;
    for (let i = 0; i < 40 && !dead; i++) {
      const c = await claim(['scan']);
      expect(c.status).toBe(200);
      if (c.json.job === null) break;
      const lz = { worker_id: 'worker-1', lease_token: c.json.lease_token };
      if (c.json.job.id === legacy) dead = c.json;
      else expect((await http('POST', `${API}/jobs/${c.json.job.id}/complete`, { ...lz, result: { findings: 0 } })).status).toBe(200);
    }
    expect(dead, 'the legacy image job was claimed').not.toBeNull();
    const f = await http('POST', `${API}/jobs/${legacy}/fail`, { worker_id: 'worker-1', lease_token: dead!.lease_token, error: { code: 'E_LAYER', message: 'unsupported layer format v1' }, retryable: true });
    expect(f.status).toBe(200);
    expect(f.json.signal).toMatchObject({ kind: 'failed', last_known_outcome: { status: 'dead_letter', error_code: 'E_LAYER' } });

    // ---------------------------------------------------------------- review the dead letters, retry that job
    const dl = await op(['job', 'list', '--state', 'dead_letter'], { as: 'read' });
    expect(rows(dl.stdout).filter((l) => l.startsWith(legacy)).length).toBe(1);
    expect(dl.stdout).toMatch(/E_LAYER/);
    expect(dl.stdout).toContain('unsupported layer format v1');
    expect(dl.stdout).toContain('legacy image format'); // the matching signature's likely cause
    const retry = await op(['job', 'retry', legacy, '--reason', 'image rebuilt']);
    expect(retry.stdout).toMatch(/queued/);
    expect((await http('GET', `${API}/jobs/${legacy}`, undefined, tok.read)).json.job).toMatchObject({ state: 'queued', attempt: 0, max_attempts: 1 });

    // ---------------------------------------------------------------- prioritize, cancel
    const waiting = (await http('GET', `${API}/jobs?type=scan&state=queued,throttled&order=asc`, undefined, tok.read)).json.jobs as Array<{ id: string }>;
    expect(waiting.length).toBeGreaterThan(2);
    const urgent = name('$URGENT_JOB', waiting.find((j) => j.id !== legacy)!.id);
    const dup = name('$DUPLICATE_JOB', waiting.find((j) => j.id !== legacy && j.id !== urgent)!.id);
    await op(['job', 'prioritize', urgent, '100', '--reason', 'customer escalation']);
    expect((await http('GET', `${API}/jobs/${urgent}`, undefined, tok.read)).json.job.priority).toBe(100);
    const cancel = await op(['job', 'cancel', dup, '--reason', 'duplicate of another scan']);
    expect(cancel.stdout).toMatch(/canceled/);
    const next = await claim(['scan'], 'worker-2');
    expect(next.json.job.id).toBe(urgent); // the highest priority goes first
    await http('POST', `${API}/jobs/${urgent}/complete`, { worker_id: 'worker-2', lease_token: next.json.lease_token, result: {} });

    // ---------------------------------------------------------------- workers over HTTP report a 429
    // The registry answers a worker 429 with Retry-After: 30. The worker reports it (the bucket
    // empties, its refill halves, it pauses for 30 s) and fails that attempt with the upstream
    // status: one call that schedules the retry and slows the host down again.
    const c429 = await claim(['scan'], 'worker-3');
    const throttledJob = name('$THROTTLED_JOB', c429.json.job.id as string);
    const rep = await http('POST', `${API}/throttles/report`, { host: 'registry.example', status: 429, retry_after_seconds: 30, worker_id: 'worker-3', job_id: throttledJob });
    expect(rep.status).toBe(200);
    expect(rep.json.bucket).toMatchObject({ host: 'registry.example', tokens: '0', capacity: '20', base_refill_per_sec: '5', refill_per_sec: '2.5' });
    expect(rep.json.bucket.penalty_until).not.toBeNull();
    const f429 = await http('POST', `${API}/jobs/${throttledJob}/fail`, {
      worker_id: 'worker-3',
      lease_token: c429.json.lease_token,
      error: { code: 'UPSTREAM_429', message: 'registry.example answered 429' },
      upstream: { status: 429, retry_after_seconds: 30 },
    });
    expect(f429.status).toBe(200);
    expect(f429.json.signal.kind).not.toBe('failed');
    expect((await http('GET', `${API}/jobs/${throttledJob}`, undefined, tok.read)).json.job).toMatchObject({ state: 'queued', attempt: 1 });
    const tl429 = await op(['throttle', 'list'], { as: 'read' });
    expect(tl429.stdout).toMatch(/registry\.example\s+0\s+20\s+1\.25\s+5\s+\d{4}-\S+Z\s+429 at \S+ \(retry after 30 s, worker-3\)/);
    // The operator sees the host slowed down; the worker's claims of its jobs wait for tokens.
    expect((await claim(['scan'], 'worker-4')).json).toEqual({ job: null });
    await op(['job', 'status', throttledJob], { as: 'read' });

    // ---------------------------------------------------------------- a throttle change
    // Gentler settings: the penalty ends, the tokens left are kept (at most the new capacity).
    const thr2 = await op(['throttle', 'set', 'registry.example', '--capacity', '10', '--refill', '2']);
    expect(thr2.stdout).toMatch(/registry\.example\s+\S+\s+10\s+2\s+2\s+-\s+429 at/);
    const tl = await op(['throttle', 'list'], { as: 'read' });
    expect(tl.stdout).toMatch(/registry\.example\s+\S+\s+10\s+2\s+2\s+-\s+429 at/);

    // ---------------------------------------------------------------- list, filtered; the run's status
    const list = await op(['job', 'list', '--type', 'scan', '--state', 'canceled,succeeded', '--limit', '5'], { as: 'read' });
    expect(list.stdout).toMatch(/^ID\s+TYPE\s+STATE\s+SIGNAL\s+AGE\n/);
    expect(rows(list.stdout).some((l) => l.startsWith(dup) && /canceled/.test(l))).toBe(true);
    const st = await op(['run', 'status', runId], { as: 'read' });
    expect(st.stdout).toMatch(/of 50 jobs done/);

    // ---------------------------------------------------------------- export, verify, replay: identical
    const keys = join(dir, 'keys');
    await host(['keys', 'generate', '--out', keys]);
    const ex = await host(['export', '--tenant', 'acme', '--key', join(keys, 'okit-signing.key'), '--out', join(dir, 'bundles')]);
    const bundle = name('$BUNDLE', ex.stdout.split('\n')[0]!);
    expect(bundle).toMatch(/okit-acme-1-\d+\.tar$/);
    const pub = join(keys, 'okit-signing.pub');
    const ver = await host(['verify', bundle, '--pubkey', pub]);
    expect(ver.stdout).toContain('VALID');
    name('$AUDIT_DB', target.url);
    const rp = await host(['replay', bundle, '--pubkey', pub, '--into', target.url]);
    expect(rp.stdout).toMatch(/\b50 identical, 0 diverged/);
    // The audit copy exports the same bytes.
    const ex2 = await host(['export', '--tenant', 'acme', '--key', join(keys, 'okit-signing.key'), '--out', join(dir, 'audit')], target.url);
    expect(readFileSync(ex2.stdout.split('\n')[0]!).equals(readFileSync(bundle))).toBe(true);
    if (process.env.OKIT_PRINT_WALKTHROUGH) console.log(transcript.map((s) => `$ ${[...s.env, 'okit', ...s.args].join(' ')}\n${s.stdout}`).join('\n'));
  }, 240_000);

  it("the README's walkthrough is this day: the same commands, output they printed, calls the worker made", () => {
    expect(transcript.length).toBeGreaterThan(20);
    expect(checkWalkthrough(readFileSync(join(ROOT, 'README.md'), 'utf8'), transcript, calls)).toEqual([]);
  });
});
