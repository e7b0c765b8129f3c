import { describe, expect, it } from 'vitest';
import { parseSeed, simulate } from '../../src/ledger/simulate.js';
import { freshDb } from '../helpers/db.js';
import { okit } from '../helpers/cli.js';
import { expectCode } from '../helpers/ledger.js';

describe('okit simulate: bad input', () => {
  it('parseSeed takes decimal or 0x hex in 0..2^32-1 and refuses the rest with INVALID_SEED', async () => {
    expect(parseSeed('7')).toBe(7);
    expect(parseSeed('0x10')).toBe(16);
    expect(parseSeed('4294967295')).toBe(4294967295);
    // As typed: padding is refused rather than guessed away (issue 9).
    for (const seed of ['abc', '-1', '1.5', '4294967296', '0xZZ', '', '1e3', '0x123456789', ' 7', '7 ', ' 0x10 ', '\t7'])
      await expectCode(async () => parseSeed(seed), 'INVALID_SEED');
  });

  it('a malformed seed exits 2 with INVALID_SEED, before touching any database', async () => {
    for (const seed of ['abc', '-1']) {
      // DATABASE_URL points nowhere: the seed must be refused first.
      const r = await okit(['simulate', '--seed', seed, '--jobs', '5'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      expect(r.code, seed).toBe(2);
      expect(r.stderr, seed).toContain('INVALID_SEED');
    }
  });

  it('a malformed job count or tenant exits 2 with INVALID_INPUT', async () => {
    for (const args of [['--jobs', 'many'], ['--jobs', '5', '--tenant', 'Not Valid']]) {
      const r = await okit(['simulate', '--seed', '7', ...args], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('INVALID_INPUT');
    }
  });
});

describe('okit simulate (CLI, DATABASE_URL)', () => {
  it('prints the same history digest as the library run on another fresh database', async () => {
    const [a, b] = await Promise.all([freshDb(), freshDb()]);
    try {
      const r = await okit(['simulate', '--seed', '7', '--jobs', '10', '--json'], { DATABASE_URL: a.url });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout);
      const lib = await simulate(b.pool, { seed: 7, jobs: 10, tenant: 'sim' });
      expect(out).toMatchObject({ seed: 7, jobs: 10, tenant: 'sim', historyDigest: lib.historyDigest, historyRows: lib.historyRows });
      // Run again into the same tenant: a typed refusal, not a crash.
      const again = await okit(['simulate', '--seed', '7', '--jobs', '10'], { DATABASE_URL: a.url });
      expect(again.code).toBe(2);
      expect(again.stderr).toContain('INVALID_INPUT');
    } finally {
      await Promise.all([a.drop(), b.drop()]);
    }
  });
});
