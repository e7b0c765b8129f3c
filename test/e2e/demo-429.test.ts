/**
 * The demo's upstream 429 goes over HTTP: `okit demo` (a child process, as `npm start` runs it)
 * has its OkitWorkers meet a real 429 from a loopback stand-in for the feed and report it
 * through the HTTP API; the ledger then holds the upstream throttle event with the reporting
 * worker and job, and the bucket's refill halved.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freshDb, type TestDb } from '../helpers/db.js';
import { okit } from '../helpers/cli.js';

let db: TestDb;
let dir: string;
beforeAll(async () => {
  db = await freshDb();
  dir = mkdtempSync(join(tmpdir(), 'okit-demo-429-'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

it("the demo's workers report the upstream 429 over HTTP: a throttle event naming the worker and the job", async () => {
  // With DATABASE_URL the demo keeps its signing key under $TMPDIR/okit-demo: ours, removed after.
  const r = await okit(['demo', '--port', '0', '--step-ms', '20', '--out', join(dir, 'bundles')], { DATABASE_URL: db.url, TMPDIR: dir });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toMatch(/\b1 upstream 429\b/);
  const { rows } = await db.pool.query("SELECT host, data FROM okit.throttle_events WHERE event = 'upstream_throttled' ORDER BY pos");
  expect(rows.length).toBe(1);
  const data = JSON.parse(rows[0].data);
  expect(data).toMatchObject({ status: 429, retry_after_seconds: '2', worker_id: expect.stringMatching(/^worker-[123]$/), job_id: expect.any(String) });
  const job = await db.pool.query('SELECT type, state FROM okit.jobs WHERE id = $1', [data.job_id]);
  expect(job.rows[0]).toMatchObject({ type: 'fetch', state: 'succeeded' });
}, 120_000);
