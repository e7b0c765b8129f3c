// Shared helpers for the benchmarks: a throwaway embedded Postgres, fresh databases,
// percentiles, a table printer and the results writer. Benchmarks run against dist/ (build first).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EmbeddedPostgres, tempHome } from '../../dist/db/embedded.js';
import { migrate } from '../../dist/db/migrate.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS = path.join(ROOT, 'scripts/bench/results');

/** Starts Postgres (DATABASE_URL's server if set, else a temporary embedded one). */
export async function startPostgres() {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, stop: async () => {} };
  const pgc = new EmbeddedPostgres(tempHome('okit-bench-'));
  await pgc.start();
  return { url: pgc.url(), stop: () => pgc.destroy(), cluster: pgc };
}

export async function createDatabase(adminUrl, name, { migrated = false } = {}) {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(adminUrl);
  u.pathname = '/' + name;
  const url = u.toString();
  if (migrated) await migrate(url);
  return url;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] };
}

export function table(rows) {
  const cols = Object.keys(rows[0]);
  const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v));
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => fmt(r[c]).length)));
  const line = (vals) => vals.map((v, i) => v.padStart(w[i])).join('  ');
  console.log(line(cols));
  for (const r of rows) console.log(line(cols.map((c) => fmt(r[c]))));
}

export function machine() {
  return { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? 'unknown', mem_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function writeResult(name, data) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ benchmark: name, machine: machine(), ...data }, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(ROOT, file)}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
