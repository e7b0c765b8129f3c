/**
 * A DATABASE_URL (or `replay --into`) that node-postgres cannot parse is a typed input error
 * with exit 2, not an internal error (exit 3) with a stack trace; so is a multi-host URL,
 * which node-postgres does not support (OFFLINE.md, Failover). Serve's connection caps are
 * checked the same way.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, okit } from '../helpers/cli.js';

const SAMPLE = join(ROOT, 'bundles/sample');

function expectTyped(r: { code: number | null; stderr: string }, code: string, text?: string) {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain(`okit: error ${code}:`);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  if (text) expect(r.stderr).toContain(text);
}

describe('malformed database URLs and serve flags', () => {
  it('a DATABASE_URL pg cannot parse is INVALID_INPUT, exit 2, no stack (ledger check, serve, db migrate)', async () => {
    for (const url of ['postgres://[::1/x', 'postgres://u:p@[zz]:5432/db', 'postgresql://h:99999/db'])
      for (const args of [['ledger', 'check'], ['serve', '--port', '0'], ['db', 'migrate']]) expectTyped(await okit(args, { DATABASE_URL: url }), 'INVALID_INPUT', 'DATABASE_URL');
  });

  it('several hosts (libpq failover syntax) are refused by name', async () => {
    const r = await okit(['ledger', 'check'], { DATABASE_URL: 'postgres://okit@db1:5432,db2:5432/okit?target_session_attrs=read-write' });
    expectTyped(r, 'INVALID_INPUT', 'several hosts');
  });

  it('replay --into takes the same check', async () => {
    const r = await okit(['replay', join(SAMPLE, 'okit-golden-1-128.tar'), '--pubkey', join(SAMPLE, 'INSECURE-test-signing.pub'), '--into', 'postgres://[::1/x']);
    expectTyped(r, 'INVALID_INPUT', '--into');
  });

  it('serve: connection caps must be whole numbers from 1', async () => {
    for (const [flag, v] of [['--max-connections', '0'], ['--max-connections', '1e3'], ['--max-connections-per-ip', '-5'], ['--max-connections-per-ip', 'lots']])
      expectTyped(await okit(['serve', '--port', '0', flag!, v!], { DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x' }), 'INVALID_INPUT', flag);
  });
});
