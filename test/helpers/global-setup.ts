/**
 * Starts one real Postgres for the whole run (embedded in a temp dir, or DATABASE_URL) and
 * migrates a template database; each test file clones it (CREATE DATABASE ... TEMPLATE),
 * which takes milliseconds.
 */
import type { TestProject } from 'vitest/node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { EmbeddedPostgres, tempHome } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

const TEMPLATE = 'okit_test_template';

export default async function setup(project: TestProject) {
  // The run's own temporary directory: every test and every okit process it starts makes its
  // temporary files under it (TMPDIR is inherited), and the run fails if any is left behind.
  const runTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'okit-testrun-'));
  fs.chmodSync(runTmp, 0o755); // the embedded Postgres runs as another user when we are root
  const outerTmp = process.env.TMPDIR;
  process.env.TMPDIR = runTmp;
  let embedded: EmbeddedPostgres | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    embedded = new EmbeddedPostgres(tempHome('okit-test-'));
    await embedded.start();
    adminUrl = embedded.url();
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = '/' + TEMPLATE;
  await migrate(u.toString());
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', TEMPLATE);
  return async () => {
    if (embedded) {
      await embedded.destroy();
      // destroy() removes the cluster; the temporary home around it is the test run's.
      fs.rmSync(embedded.home, { recursive: true, force: true });
    }
    const left = fs.readdirSync(runTmp);
    fs.rmSync(runTmp, { recursive: true, force: true });
    if (outerTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outerTmp;
    if (left.length) throw new Error(`the tests left ${left.length} temporary files or directories behind: ${left.slice(0, 20).join(', ')}`);
  };
}
