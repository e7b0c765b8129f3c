import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTokensCreate } from '../../src/cli/tokens.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { OkitClient } from '../../src/worker/client.js';
import { freshDb, type TestDb } from '../helpers/db.js';

interface Proc {
  child: ChildProcess;
  base: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

function serve(url: string): Promise<Proc> {
  const child = spawn(process.execPath, ['dist/cli/main.js', 'serve', '--port', '0'], {
    env: { ...process.env, DATABASE_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + err)), 20_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1]!, stderr: () => err, exit });
      }
    });
    child.on('close', () => reject(new Error('serve exited: ' + err)));
  });
}

async function token(url: string, scope: string): Promise<string> {
  const lines: string[] = [];
  const code = await runTokensCreate({ tenant: 'acme', scope }, { out: (l) => lines.push(l), err: () => undefined, env: { DATABASE_URL: url }, cwd: process.cwd() });
  expect(code).toBe(0);
  return lines[0]!;
}

describe('several okit serve processes on one database', () => {
  let db: TestDb;
  let a: Proc;
  let b: Proc;
  beforeAll(async () => {
    db = await freshDb();
    [a, b] = await Promise.all([serve(db.url), serve(db.url)]);
  });
  afterAll(async () => {
    for (const p of [a, b]) if (p && p.child.exitCode === null) p.child.kill('SIGKILL');
    await db.drop();
  });

  it('tokens create prints a token once and stores only its sha256', async () => {
    const tok = await token(db.url, 'read');
    expect(tok).toMatch(/^okit_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.pool.query('SELECT token_sha256 FROM okit.api_tokens');
    expect(rows.some((r) => r.token_sha256 === tok)).toBe(false);
    expect(JSON.stringify(rows)).not.toContain(tok.slice(5));
  });

  it('a long-poll on one process is woken by a transition made through the other', async () => {
    const reader = new OkitClient({ url: a.base, token: await token(db.url, 'read') });
    const worker = new OkitClient({ url: b.base, token: await token(db.url, 'worker') });
    const { job } = await worker.enqueue({ type: 'x' });
    const first = await reader.firstSignal(job.id);
    expect(first.status).toBe(200);
    const t0 = performance.now();
    const pending = reader.firstSignal(job.id, { etag: first.etag, wait: 20 });
    await new Promise((r) => setTimeout(r, 300));
    await worker.claim({ workerId: 'w-b', types: ['x'] });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.status === 200 && r.signal.kind).toBe('started');
    expect(performance.now() - t0).toBeLessThan(10_000); // woken, not timed out at 20 s
    // And the other way round.
    const p2 = worker.firstSignal(job.id, { etag: r.etag, wait: 20 });
    await new Promise((r) => setTimeout(r, 300));
    await new Ledger(db.pool).progress('acme', job.id, 'w-b', { phase: 'fetch' });
    expect((await p2).status).toBe(200);
  });

  it('SIGTERM answers a pending long-poll, then the process exits 0', async () => {
    const reader = new OkitClient({ url: a.base, token: await token(db.url, 'read') });
    const { job } = await new Ledger(db.pool).enqueue('acme', { type: 'term' });
    const first = await reader.firstSignal(job.id);
    const pending = reader.firstSignal(job.id, { etag: first.etag, wait: 25 });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    a.child.kill('SIGTERM');
    const r = await pending;
    expect(r.status).toBe(304);
    expect(r.etag).toBe(first.etag);
    expect(await a.exit).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(a.stderr()).toContain('SIGTERM');
    // The other process keeps serving.
    const other = new OkitClient({ url: b.base, token: await token(db.url, 'read') });
    expect((await other.firstSignal(job.id)).status).toBe(200);
  });
});
