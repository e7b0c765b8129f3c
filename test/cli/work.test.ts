/**
 * `okit work` (issue 13): real `okit work` processes against a real server, running real
 * child processes (Bash scripts) per job.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OkitClient } from '../../src/worker/client.js';
import { OKIT, ROOT, okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined | null | false>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('okit work', () => {
  let db: TestDb;
  let t: TestServer;
  let w: OkitClient;
  let admin: OkitClient;
  let dir: string;
  const procs: Array<{ p: ChildProcess; out: () => string }> = [];

  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool, { sweepMs: 200 });
    w = new OkitClient({ url: t.base, token: t.tokens.worker });
    admin = new OkitClient({ url: t.base, token: t.tokens.admin });
    dir = mkdtempSync(path.join(os.tmpdir(), 'okit-work-'));
  });
  afterEach(async () => {
    for (const { p } of procs.splice(0)) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGKILL');
        await new Promise((r) => p.once('close', r));
      }
    }
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const script = (name: string, body: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(f, 0o755);
    return f;
  };

  /** Starts `okit work ARGS`; its stderr is kept. */
  const work = (args: string[]) => {
    const p = spawn(process.execPath, [OKIT, 'work', '--claim-wait', '2', ...args], {
      cwd: ROOT,
      env: { ...process.env, OKIT_URL: t.base, OKIT_TOKEN: t.tokens.worker },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.stdout!.on('data', (d) => (err += d));
    const h = { p, out: () => err, exit: new Promise<number | null>((r) => p.once('close', (c) => r(c))) };
    procs.push(h);
    return h;
  };

  const state = async (id: string) => (await w.getJob(id)).state;
  const events = async (id: string) => (await w.history(id)).map((h) => h.event);

  it('exit codes map to complete (with the last result line), retryable fail (75) and terminal fail (EXIT_n, with the log tail)', async () => {
    const s = script(
      'exits.sh',
      `payload=$(cat)
code=$(printf '%s' "$payload" | sed -E 's/.*"code":([0-9]+).*/\\1/')
echo "working on $OKIT_JOB_ID" >&2
echo "not a report"
echo '{"result":{"first":true}}'
printf '{"result":{"job":"%s","type":"%s","attempt":"%s","tenant":"%s","token":"%s","payload":%s}}\\n' "$OKIT_JOB_ID" "$OKIT_JOB_TYPE" "$OKIT_JOB_ATTEMPT" "$OKIT_TENANT" "\${OKIT_TOKEN:-none}" "$payload"
exit "$code"`,
    );
    const ok = (await w.enqueue({ type: 'exits', payload: { code: 0 } })).job;
    const temp = (await w.enqueue({ type: 'exits', payload: { code: 75 }, maxAttempts: 2 })).job;
    const bad = (await w.enqueue({ type: 'exits', payload: { code: 3 } })).job;
    const h = work(['--type', 'exits', '--', s]);
    await until('all three ran', async () => (await state(ok.id)) === 'succeeded' && (await state(bad.id)) === 'failed' && (await events(temp.id)).includes('retry_scheduled'));
    const done = await w.getJob(ok.id);
    const res = (await w.history(ok.id)).find((r) => r.event === 'succeeded')!.data as { result: Record<string, unknown> };
    expect(res.result).toEqual({ job: ok.id, type: 'exits', attempt: '1', tenant: 'acme', token: 'none', payload: { code: 0 } });
    expect(done.state).toBe('succeeded');
    const failed = (await w.history(bad.id)).find((r) => r.event === 'failed')!.data as { error: { code: string; message: string } };
    expect(failed.error.code).toBe('EXIT_3');
    expect(failed.error.message).toContain('exited with 3');
    expect(failed.error.message).toContain(`working on ${bad.id}`);
    expect(failed.error.message).toContain('not a report');
    const retry = (await w.history(temp.id)).find((r) => r.event === 'retry_scheduled')!.data as { error: { code: string } };
    expect(retry.error.code).toBe('EXIT_75');
    h.p.kill('SIGTERM');
    expect(await h.exit).toBe(0);
  });

  it('progress lines become the job’s signal; a malformed line is logged, never fatal', async () => {
    const s = script(
      'progress.sh',
      `echo '{"phase":"analyze","items_done":3,"items_total":10,"summary":"Scanning layers"}'
echo '{"phase":42}'
echo '{"phase":"analyze","items_done":"x"}'
sleep 1
echo '{"result":{"ok":1}}'`,
    );
    const { job } = await w.enqueue({ type: 'progress' });
    const h = work(['--type', 'progress', '--', s]);
    const sig = await until('the analyze phase', async () => {
      const f = await w.firstSignal(job.id);
      return f.status === 200 && f.signal.phase === 'analyze' ? f.signal : null;
    });
    expect(sig.summary).toContain('Scanning layers');
    await until('done', async () => (await state(job.id)) === 'succeeded');
    expect(h.out()).toMatch(/ignored a line \(phase: must be a string\)/);
    expect(h.out()).toMatch(/ignored a line \(items_done: must be a number\)/);
  });

  it('a 429 line slows that host’s bucket (the job’s source’s host when none is named), and exit 75 retries', async () => {
    const src = await t.ledger.createSource('acme', { name: 'feed', host: 'feed.example' });
    await t.ledger.configureThrottle('acme', 'feed.example', { capacity: 5, refillPerSec: 4 });
    await t.ledger.configureThrottle('acme', 'named.example', { capacity: 5, refillPerSec: 2 });
    const s = script(
      'upstream.sh',
      `echo '{"upstream":{"status":429,"retry_after_seconds":30}}'
echo '{"upstream":{"status":429,"retry_after_seconds":5,"host":"named.example"}}'
exit 75`,
    );
    const { job } = await w.enqueue({ type: 'upstream', sourceId: src.id, maxAttempts: 3 });
    const h = work(['--type', 'upstream', '--', s]);
    await until('the retry', async () => (await events(job.id)).includes('retry_scheduled'));
    const bucket = async (host: string) =>
      (await db.pool.query("SELECT refill_per_sec::float8 AS r, tokens::float8 AS t FROM okit.throttles WHERE tenant = 'acme' AND host = $1", [host])).rows[0] as { r: number; t: number };
    expect(await bucket('feed.example')).toMatchObject({ r: 2 }); // halved
    expect(await bucket('named.example')).toMatchObject({ r: 1 });
    const retry = (await w.history(job.id)).find((r) => r.event === 'retry_scheduled')!.data as { error: { code: string } };
    expect(retry.error.code).toBe('UPSTREAM_429');
    h.p.kill('SIGTERM');
    await h.exit;
  });

  it('cancel kills a running child (SIGTERM, then SIGKILL for one that ignores it); okit work goes on', async () => {
    const pidFile = path.join(dir, 'cancel.pid');
    const s = script('stubborn.sh', `trap '' TERM\necho $$ > ${pidFile}\nwhile true; do sleep 0.1; done`);
    const { job } = await w.enqueue({ type: 'stubborn' });
    const h = work(['--type', 'stubborn', '--kill-grace', '0.5', '--', s]);
    const pid = await until('the child', async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')));
    expect(alive(pid)).toBe(true);
    await admin.cancel(job.id, { reason: 'not needed' });
    await until('the child killed', async () => !alive(pid), 10_000);
    expect(await state(job.id)).toBe('canceled');
    await until('the log line', async () => /canceled: its command was stopped/.test(h.out()));
    expect(h.p.exitCode).toBeNull(); // still working
    h.p.kill('SIGTERM');
    await h.exit;
  });

  it('a child that never exits keeps its lease alive past the lease seconds; --timeout kills it and fails the job retryably', async () => {
    const pidFile = path.join(dir, 'forever.pid');
    const s = script('forever.sh', `echo $$ > ${pidFile}\nexec sleep 1000`);
    const { job } = await w.enqueue({ type: 'forever' });
    const h = work(['--type', 'forever', '--lease', '1', '--timeout', '3.5', '--', s]);
    const pid = await until('the child', async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')));
    await sleep(2500); // past its 1 s lease: the heartbeats hold it
    const j = await w.getJob(job.id);
    expect(j.state).toBe('running');
    expect(j.attempt).toBe(1);
    await until('the timeout', async () => (await events(job.id)).includes('retry_scheduled'));
    const failed = (await w.history(job.id)).find((r) => r.event === 'retry_scheduled')!.data as { error: { code: string } };
    expect(failed.error.code).toBe('JOB_TIMEOUT');
    expect(alive(pid)).toBe(false);
    expect(await events(job.id)).not.toContain('lease_expired');
    h.p.kill('SIGTERM');
    await h.exit;
  });

  it('a kill -9 of okit work returns its job after lease expiry, with the attempt counted', async () => {
    const pidFile = path.join(dir, 'orphan.pid');
    const s = script('slow.sh', `echo $$ > ${pidFile}\nif [ "$OKIT_JOB_ATTEMPT" = 1 ]; then exec sleep 1000; fi\necho '{"result":{"attempt":'$OKIT_JOB_ATTEMPT'}}'`);
    const { job } = await w.enqueue({ type: 'slow' });
    const h = work(['--type', 'slow', '--lease', '2', '--', s]);
    const pid = await until('the child', async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')));
    h.p.kill('SIGKILL');
    await h.exit;
    process.kill(pid, 'SIGKILL'); // the orphaned child (its own process group) is not ours to keep
    const h2 = work(['--type', 'slow', '--', s]);
    await until('the second attempt', async () => (await state(job.id)) === 'succeeded');
    expect(await events(job.id)).toEqual(['enqueued', 'claimed', 'lease_expired', 'claimed', 'succeeded']);
    expect((await w.getJob(job.id)).attempt).toBe(2);
    h2.p.kill('SIGTERM');
    await h2.exit;
  });

  it('SIGTERM drains: running jobs finish, nothing more is claimed, nothing is lost or done twice', async () => {
    const log = path.join(dir, 'done.log');
    const s = script('drain.sh', `sleep 1\necho "$OKIT_JOB_ID" >> ${log}`);
    const jobs = (await w.enqueueMany(Array.from({ length: 6 }, () => ({ type: 'drain' })))).map((j) => j.job.id);
    const h = work(['--type', 'drain', '--concurrency', '2', '--', s]);
    await until('two running', async () => (await Promise.all(jobs.map(state))).filter((x) => x === 'running').length === 2);
    h.p.kill('SIGTERM');
    expect(await h.exit).toBe(0);
    const states = await Promise.all(jobs.map(state));
    expect(states.filter((x) => x === 'succeeded').length).toBe(2);
    expect(states.filter((x) => x === 'queued').length).toBe(4);
    // A second worker takes the rest.
    const h2 = work(['--type', 'drain', '--concurrency', '3', '--', s]);
    await until('all done', async () => (await Promise.all(jobs.map(state))).every((x) => x === 'succeeded'));
    h2.p.kill('SIGTERM');
    await h2.exit;
    const ran = readFileSync(log, 'utf8').trim().split('\n');
    expect(ran.sort()).toEqual([...jobs].sort());
    for (const id of jobs) expect((await events(id)).filter((e) => e === 'claimed')).toHaveLength(1);
  });

  it('concurrency is honoured with real children', async () => {
    const log = path.join(dir, 'conc.log');
    const s = script('conc.sh', `echo "start $(date +%s%N)" >> ${log}\nsleep 0.5\necho "end $(date +%s%N)" >> ${log}`);
    const jobs = (await w.enqueueMany(Array.from({ length: 7 }, () => ({ type: 'conc' })))).map((j) => j.job.id);
    const h = work(['--type', 'conc', '--concurrency', '3', '--', s]);
    await until('all done', async () => (await Promise.all(jobs.map(state))).every((x) => x === 'succeeded'));
    h.p.kill('SIGTERM');
    await h.exit;
    const evs = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([k, ns]) => ({ k, ns: BigInt(ns!) }));
    evs.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
    let now = 0;
    let peak = 0;
    for (const e of evs) {
      now += e.k === 'start' ? 1 : -1;
      peak = Math.max(peak, now);
    }
    expect(peak).toBe(3);
  });

  it('a child that prints 10 MB on stdout: memory stays bounded and the job still fails properly', async () => {
    const s = script('loud.sh', `head -c 10000000 /dev/zero | tr '\\0' 'x'\necho\nfor i in $(seq 1 3000); do echo "line $i of chatter"; done\nexit 4`);
    const { job } = await w.enqueue({ type: 'loud' });
    const h = work(['--type', 'loud', '--', s]);
    await until('the failure', async () => (await state(job.id)) === 'failed', 30_000);
    const failed = (await w.history(job.id)).find((r) => r.event === 'failed')!.data as { error: { code: string; message: string } };
    expect(failed.error.code).toBe('EXIT_4');
    expect(failed.error.message).toContain('line 3000 of chatter');
    expect(failed.error.message).not.toContain('line 2900 of chatter');
    expect([...failed.error.message].length).toBeLessThanOrEqual(2000);
    h.p.kill('SIGTERM');
    await h.exit;
  });

  it('a command that does not exist or is not executable: exit 2 at start-up, before any claim', async () => {
    const { job } = await w.enqueue({ type: 'never-claimed' });
    const notExec = path.join(dir, 'plain.txt');
    writeFileSync(notExec, 'echo hi\n');
    const env = { OKIT_URL: t.base, OKIT_TOKEN: t.tokens.worker };
    const a = await okit(['work', '--type', 'never-claimed', '--', path.join(dir, 'missing.sh')], env);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/COMMAND_NOT_FOUND/);
    const b = await okit(['work', '--type', 'never-claimed', '--', notExec], env);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/COMMAND_NOT_EXECUTABLE/);
    const c = await okit(['work', '--type', 'never-claimed', '--', 'no-such-program-okit'], env);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/not found on PATH/);
    const d = await okit(['work', '--', 'true'], env);
    expect(d.code).toBe(2);
    const e = await okit(['work', '--type', 'never-claimed', '--concurrency', 'lots', '--', 'true'], env);
    expect(e.code).toBe(2);
    const f = await okit(['work', '--type', 'never-claimed', '--', 'true'], { OKIT_URL: t.base, OKIT_TOKEN: 'okit_bad' });
    expect(f.code).toBe(2);
    expect(await state(job.id)).toBe('queued');
    expect((await w.getJob(job.id)).attempt).toBe(0);
  });
  it('the README’s Bash and Python workers run under okit work as printed', async () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const bash = /```bash\n(#!\/usr\/bin\/env bash\n# okit work --type mirror[\s\S]*?)```/.exec(readme)?.[1];
    const py = /```python\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(bash).toBeTruthy();
    expect(py).toBeTruthy();
    const mirror = path.join(dir, 'mirror.sh');
    const scan = path.join(dir, 'scan.py');
    writeFileSync(mirror, bash!);
    writeFileSync(scan, py!);
    chmodSync(mirror, 0o755);
    chmodSync(scan, 0o755);
    // The mirror's upstream: 429 with Retry-After first, then the file.
    let hits = 0;
    const up = createServer((req, res) => {
      req.resume();
      if (hits++ === 0) res.writeHead(429, { 'retry-after': '60' }).end();
      else res.writeHead(200).end('0123456789');
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const upUrl = `http://127.0.0.1:${(up.address() as AddressInfo).port}/feed`;
    try {
      const src = await t.ledger.createSource('acme', { name: 'mirror', host: 'mirror.example' });
      await t.ledger.configureThrottle('acme', 'mirror.example', { capacity: 5, refillPerSec: 4 });
      const a = (await w.enqueue({ type: 'mirror', payload: { url: upUrl }, sourceId: src.id })).job;
      const b = (await w.enqueue({ type: 'mirror', payload: { url: upUrl } })).job;
      const c = (await w.enqueue({ type: 'scan-py', payload: { files: ['a', 'b', 'c'] } })).job;
      const h = work(['--type', 'mirror', '--', mirror]);
      const h2 = work(['--type', 'scan-py', '--', scan]);
      await until('the mirror jobs', async () => (await events(a.id)).includes('retry_scheduled') && (await state(b.id)) === 'succeeded');
      const retry = (await w.history(a.id)).find((r) => r.event === 'retry_scheduled')!.data as { error: { code: string } };
      expect(retry.error.code).toBe('UPSTREAM_429');
      const rate = (await db.pool.query("SELECT refill_per_sec::float8 AS r FROM okit.throttles WHERE tenant = 'acme' AND host = 'mirror.example'")).rows[0].r;
      expect(rate).toBe(2);
      expect(((await w.history(b.id)).find((r) => r.event === 'succeeded')!.data as { result: unknown }).result).toEqual({ bytes: 10 });
      await until('the python job', async () => (await state(c.id)) === 'succeeded');
      expect(((await w.history(c.id)).find((r) => r.event === 'succeeded')!.data as { result: unknown }).result).toEqual({ scanned: 3, attempt: '1' });
      h.p.kill('SIGTERM');
      h2.p.kill('SIGTERM');
      await Promise.all([h.exit, h2.exit]);
    } finally {
      await new Promise((r) => up.close(r));
    }
  });
});
