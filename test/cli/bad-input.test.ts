/**
 * The outside world's failures are typed errors with exit 2, never an internal error (exit 3)
 * with a stack: files that cannot be written, a DATABASE_URL that is malformed, refused or
 * wrong, and a reader that closes our stdout early (`okit ... | head`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, afterAll } from 'vitest';
import { OKIT, ROOT, okit } from '../helpers/cli.js';
import { freshDb } from '../helpers/db.js';

const SAMPLE = join(ROOT, 'bundles/sample');
const GOLDEN = join(SAMPLE, 'okit-golden-1-128.tar');
const PUB = join(SAMPLE, 'INSECURE-test-signing.pub');
const KEY = join(SAMPLE, 'INSECURE-test-signing.key');

function expectTyped(r: { code: number | null; stderr: string }, code: string) {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(`okit: error ${code}:`);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
}

describe('bad input on the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'okit-bad-'));
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('an output directory that is a file is IO_ERROR (keys generate, replay --out)', async () => {
    expectTyped(await okit(['keys', 'generate', '--out', join(file, 'sub')]), 'IO_ERROR');
    expectTyped(await okit(['replay', GOLDEN, '--pubkey', PUB, '--out', dir]), 'IO_ERROR');
  });

  it('a malformed DATABASE_URL is INVALID_INPUT; a refused or unknown database is DB_UNAVAILABLE', async () => {
    expectTyped(await okit(['ledger', 'check'], { DATABASE_URL: 'notaurl' }), 'INVALID_INPUT');
    const empty = await okit(['ledger', 'check', '--tenant', ''], { DATABASE_URL: 'notaurl' }); // not "all tenants"
    expectTyped(empty, 'INVALID_INPUT');
    expect(empty.stderr).toContain('tenant:');
    expectTyped(await okit(['export', '--tenant', 'x', '--key', KEY], { DATABASE_URL: 'postgres://x:y@127.0.0.1:1/db' }), 'DB_UNAVAILABLE');
    expectTyped(await okit(['replay', GOLDEN, '--pubkey', PUB, '--into', 'postgres://x:y@127.0.0.1:1/db']), 'DB_UNAVAILABLE');
  });

  it('a malformed --url is INVALID_INPUT at once, not retried forever by --watch', async () => {
    expectTyped(await okit(['job', 'status', '00000000-0000-0000-0000-000000000000', '--watch', '--url', 'notaurl', '--token', 'x']), 'INVALID_INPUT');
  });

  it('serve on a port in use is LISTEN_FAILED and the process exits (it used to hang)', async () => {
    const db = await freshDb();
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      expectTyped(await okit(['serve', '--port', String(port)], { DATABASE_URL: db.url }), 'LISTEN_FAILED');
      expectTyped(await okit(['demo', '--port', 'abc'], { DATABASE_URL: db.url }), 'INVALID_INPUT');
    } finally {
      taken.close();
      await db.drop();
    }
  }, 20_000);

  it('stdout closed early (`| head`) ends quietly', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [OKIT, 'verify', GOLDEN, '--pubkey', PUB], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.destroy(); // the reader goes away before okit writes its first line
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(r.code).toBe(0);
  });
});
