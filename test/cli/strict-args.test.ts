/**
 * Finding 10: numbers on the command line are read as typed. `--seed " 7"` and `--jobs 0x10`
 * (which Number() took as 7 and 16) are refused with a typed error and exit 2.
 */
import { describe, expect, it } from 'vitest';
import { parseSeed } from '../../src/ledger/simulate.js';
import { decimalArg } from '../../src/ledger/validate.js';
import { okit } from '../helpers/cli.js';

// Refused before any database is touched: this URL is never dialled.
const env = { DATABASE_URL: 'postgres://nobody:x@127.0.0.1:1/none' };

describe('strict numeric arguments', () => {
  it('simulate refuses padded seeds and non-decimal job and worker counts', async () => {
    for (const [args, code] of [
      [['--seed', ' 7', '--jobs', '3'], 'INVALID_SEED'],
      [['--seed', '7 ', '--jobs', '3'], 'INVALID_SEED'],
      [['--seed', '7', '--jobs', '0x10'], 'INVALID_INPUT'],
      [['--seed', '7', '--jobs', ' 16'], 'INVALID_INPUT'],
      [['--seed', '7', '--jobs', '1e1'], 'INVALID_INPUT'],
      [['--seed', '7', '--jobs', ''], 'INVALID_INPUT'],
      [['--seed', '7', '--jobs', '3', '--workers', '0x4'], 'INVALID_INPUT'],
    ] as const) {
      const r = await okit(['simulate', ...args], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`okit: error ${code}:`);
    }
    const port = await okit(['serve', '--port', '0x10'], env);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('okit: error INVALID_INPUT: port:');
  });

  it('what is accepted: decimal, and 0x hex for seeds only (as documented)', () => {
    expect(parseSeed('7')).toBe(7);
    expect(parseSeed('0x10')).toBe(16);
    expect(parseSeed('4294967295')).toBe(4294967295);
    expect(() => parseSeed('4294967296')).toThrow();
    expect(decimalArg('16', 'jobs', 1, 100)).toBe(16);
    for (const bad of ['0x10', '+16', '-1', '16.0', '1_000', '１６']) expect(() => decimalArg(bad, 'jobs', 1, 100), bad).toThrow(/jobs: must be a decimal integer/);
  });
});
