/**
 * Finding 7: control characters never reach the operator's terminal. Text fields refuse them
 * at input; and whatever the ledger holds (older rows, a loaded bundle, a tampered table),
 * every CLI line escapes them: `okit job status`, `okit job history`, errors.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobHistory, runJobStatus } from '../../src/cli/job.js';
import { terminalLine } from '../../src/util/terminal.js';
import { captureIo, OKIT, okit } from '../helpers/cli.js';
import { freshDb, type TestDb } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/serve.js';

const A = '/api/v1/orchestrator';
const HOSTILE = 'pwned\u001b]0;owned\u0007\u001b[2J\r[succeeded] Completed in 1s\n[x]\u009b31m\u202eevil\u2028';
// Anything a terminal acts on: C0 but the line feed that ends a line, DEL, C1, bidi overrides, separators.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const capture = captureIo;

describe('control characters', () => {
  let db: TestDb;
  let t: TestServer;
  beforeAll(async () => {
    db = await freshDb();
    t = await startTestServer(db.url, db.pool);
  });
  afterAll(async () => {
    await t.srv.close();
    await db.drop();
  });

  it('are refused at input in every text field: summary, error.message, reason, idempotency_key', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'cc' });
    const c = (await t.ledger.claim('acme', { workerId: 'w', types: ['cc'] }))!;
    const lease = { worker_id: 'w', lease_token: c.leaseToken };
    for (const [path, body, field, token] of [
      [`${A}/jobs/${job.id}/progress`, { ...lease, phase: 'fetch', summary: HOSTILE }, 'summary', t.tokens.worker],
      [`${A}/jobs/${job.id}/fail`, { ...lease, error: { code: 'E', message: HOSTILE } }, 'error.message', t.tokens.worker],
      [`${A}/jobs/${job.id}/cancel`, { reason: HOSTILE }, 'reason', t.tokens.admin],
      [`${A}/jobs`, { type: 'cc', idempotency_key: HOSTILE }, 'idempotency_key', t.tokens.worker],
    ] as const) {
      const r = await t.post(path, token, body);
      expect(r.status, field).toBe(400);
      const e = (await r.json()).error;
      expect(e).toMatchObject({ code: 'INVALID_INPUT', details: { field } });
      expect(e.message).toBe(`${field}: must not contain control characters (U+001B at index 5)`);
    }
    expect((await t.ledger.getJob('acme', job.id)).history_n).toBe(2); // enqueued, claimed: nothing else written
  });

  it('terminalLine escapes every control as \\uXXXX and keeps JSON lines valid JSON', () => {
    const line = terminalLine(HOSTILE);
    expect(line).not.toMatch(RAW_CONTROL);
    expect(line).not.toContain('\n');
    expect(line).toBe('pwned\\u001b]0;owned\\u0007\\u001b[2J\\u000d[succeeded] Completed in 1s\\u000a[x]\\u009b31m\\u202eevil\\u2028');
    const json = JSON.stringify({ s: HOSTILE });
    expect(JSON.parse(terminalLine(json))).toEqual({ s: HOSTILE });
    expect(terminalLine('plain é 😀 text')).toBe('plain é 😀 text');
  });

  it('okit job status and okit job history print what the ledger holds escaped, one line per row', async () => {
    const { job } = await t.ledger.enqueue('acme', { type: 'tampered' });
    // What input no longer allows, put in the tables behind the API's back.
    await db.pool.query('UPDATE okit.first_signal_snapshots SET summary = $2 WHERE job_id = $1', [job.id, HOSTILE]);
    const head = await t.ledger.getJob('acme', job.id);
    await db.pool.query(
      `INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
       VALUES ('acme', 999999, $1, 2, '2025-12-04T12:00:00Z', 'canceled', 'queued', 'canceled', $2, $3, $4)`,
      [job.id, JSON.stringify({ actor: 'ops', reason: HOSTILE }), head.last_hash, 'f'.repeat(64)],
    );
    const env = { OKIT_URL: t.base, OKIT_TOKEN: t.tokens.read };

    const io = capture(env);
    await runJobStatus(job.id, {}, io);
    expect(io.lines).toHaveLength(1);
    expect(io.lines[0]).not.toMatch(RAW_CONTROL);
    expect(io.lines[0]).toMatch(/^\[queued\] pwned\\u001b\]0;owned\\u0007/);

    const hist = capture(env);
    await runJobHistory(job.id, {}, hist);
    expect(hist.lines).toHaveLength(2);
    for (const l of hist.lines) expect(l).not.toMatch(RAW_CONTROL);
    const json = capture(env);
    await runJobHistory(job.id, { json: true }, json);
    expect(JSON.parse(json.lines[1]!).data.reason).toBe(HOSTILE); // escaped, and still the same JSON
    for (const l of json.lines) expect(l).not.toMatch(RAW_CONTROL);

    // The binary, as an operator runs it: the bytes on stdout (spawned async: the server is in this process).
    for (const args of [['job', 'status', job.id], ['job', 'history', job.id], ['job', 'history', job.id, '--json']]) {
      const r = await okit(args, env);
      expect(r.code, r.stderr).toBe(0);
      const out = r.stdout;
      expect(out.split('\n').filter(Boolean)).toHaveLength(args[1] === 'status' ? 1 : 2);
      expect(out.replace(/\n/g, '')).not.toMatch(RAW_CONTROL);
      expect(out).toContain('\\u001b]0;owned');
    }
  });

  it('error lines are escaped too (commander echoing an option, a message quoting input)', () => {
    const r = spawnSync(process.execPath, [OKIT, 'job', 'status', '--bogus\u001b[2J\rfake'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('\\u001b[2J\\u000dfake');
    expect(r.stderr.replace(/\n/g, '')).not.toMatch(RAW_CONTROL);
  });
});
