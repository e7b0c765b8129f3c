/**
 * Starts one real Postgres for the whole run (embedded in a temp dir, or DATABASE_URL) and
 * migrates a template database; each test file clones it (CREATE DATABASE ... TEMPLATE),
 * which takes milliseconds.
 */
import type { TestProject } from 'vitest/node';
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
    if (embedded) await embedded.destroy();
  };
}
