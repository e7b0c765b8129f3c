/**
 * As root, an OKIT_HOME the Postgres user cannot enter (a 0700 directory, as `mktemp -d` makes)
 * puts the cluster under /var/lib/okit/clusters, which must then be enterable by that user even
 * if /var/lib/okit was created 0700 before. Relocation is for root only (CI runs as root); as a
 * normal user the cluster stays under OKIT_HOME, the user's own directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../src/db/embedded.js';

describe('embedded Postgres under a 0700 OKIT_HOME', () => {
  it('as root relocates to /var/lib/okit/clusters and starts even when /var/lib/okit was 0700; otherwise stays home', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-private-')); // 0700
    try {
      if (process.getuid?.() !== 0) {
        expect(new EmbeddedPostgres(home).pgDir).toBe(path.join(home, 'pg'));
        expect(fs.existsSync(path.join(home, 'pg.location'))).toBe(false);
        return;
      }
      fs.mkdirSync('/var/lib/okit', { recursive: true });
      fs.chmodSync('/var/lib/okit', 0o700);
      const pg = new EmbeddedPostgres(home);
      try {
        expect(pg.pgDir.startsWith('/var/lib/okit/clusters/')).toBe(true);
        expect(fs.readFileSync(path.join(home, 'pg.location'), 'utf8').trim()).toBe(pg.pgDir);
        expect(await pg.start()).toBe(true);
      } finally {
        await pg.destroy();
      }
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  }, 60_000);
});
