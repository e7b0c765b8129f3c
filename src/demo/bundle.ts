import type { Pool } from '../db/pool.js';
import type { Io } from '../cli/io.js';

export interface BundleReport {
  ok: boolean;
  path: string;
  sha256: string;
  verify: string;
  replay: string;
}

// Wired to the bundle exporter once it lands (issue 4).
export async function bundleStep(_o: { io: Io; pool: Pool; tenant: string; home?: string; out?: string }): Promise<BundleReport> {
  return { ok: false, path: '-', sha256: '-', verify: 'not run', replay: 'not run' };
}
