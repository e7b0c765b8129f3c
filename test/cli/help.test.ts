import { describe, expect, it } from 'vitest';
import { okit } from '../helpers/cli.js';

describe('okit --help', () => {
  it('runs from dist, exits 0 and lists the commands', async () => {
    const r = await okit(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['db', 'ledger', 'simulate']) expect(r.stdout).toMatch(new RegExp(`^\\s+${cmd}\\b`, 'm'));
  });

  it('an unknown command is a usage error (exit 2)', async () => {
    const r = await okit(['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
