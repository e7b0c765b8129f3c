// First-signal GET throughput, 200 and 304, against a bare node:http JSON handler serving the
// same bytes with the same ETag in the same run. Each server runs in its own process; the load
// generator is pure Node: C keep-alive connections over 127.0.0.1, each sending the next request
// as soon as the previous response is complete (raw sockets and a minimal response parser, so
// the generator costs less than the servers it measures). Postgres, the server and the
// generator share the machine's cores. Usage: node scripts/bench/get-throughput.mjs [seconds=5] [connections=32]
// OKIT_BENCH_PROF=DIR writes a V8 CPU profile of the okit server process into DIR.
import { spawn } from 'node:child_process';
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { createToken } from '../../dist/http/tokens.js';
import { createDatabase, getBenchJob, httpLoad as load, round, spawnServer, startPostgres, table, writeResult } from './lib.mjs';

const SECONDS = Number(process.argv[2] ?? 5);
const CONNS = Number(process.argv[3] ?? 32);
const API = '/api/v1/orchestrator';

/** The baseline: node:http, a fixed JSON body, ETag/If-None-Match, nothing else. */
const BARE = `
const http = require('node:http');
const [etag, body] = JSON.parse(process.env.BARE_REPLY);
const srv = http.createServer((req, res) => {
  if (req.headers['if-none-match'] === etag) { res.writeHead(304, { ETag: etag, 'Cache-Control': 'private, max-age=1' }); res.end(); return; }
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ETag: etag, 'Cache-Control': 'private, max-age=1' });
  res.end(body);
});
srv.listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));`;

const pgsrv = await startPostgres();
let server;
let bare;
const rows = [];
try {
  const url = await createDatabase(pgsrv.url, 'bench_get', { migrated: true });
  const pool = createPool(url, { max: 4 });
  const ledger = new Ledger(pool);
  const { token } = await createToken(pool, { tenant: 'bench', scope: 'read' });
  const job = await getBenchJob(ledger);
  await pool.end();

  server = await spawnServer(url, { execArgv: process.env.OKIT_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.OKIT_BENCH_PROF] : [] });
  const path = `${API}/jobs/${job.id}/first-signal`;
  const r = await fetch(server.baseUrl + path, { headers: { Authorization: `Bearer ${token}` } });
  const etag = r.headers.get('etag');
  const body = await r.text();
  bare = spawn(process.execPath, ['-e', BARE], { env: { ...process.env, BARE_REPLY: JSON.stringify([etag, body]) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const barePort = await new Promise((res) => bare.once('message', (m) => res(m.port)));

  const req = (p, extra = '') => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nAccept: application/json\r\n${extra}\r\n`);
  const cases = [
    ['200', ''],
    ['304', `If-None-Match: ${etag}\r\n`],
  ];
  for (const [status, extra] of cases) {
    // Alternate the two servers so that background load hits both alike.
    const o = await load(server.port, req(path, extra), SECONDS, CONNS);
    const b = await load(barePort, req(path, extra), SECONDS, CONNS);
    rows.push({ status, server: 'okit', connections: CONNS, ...o, statuses: JSON.stringify(o.statuses), ratio_vs_bare: round(o.req_per_s / b.req_per_s) });
    rows.push({ status, server: 'bare node:http', connections: CONNS, ...b, statuses: JSON.stringify(b.statuses), ratio_vs_bare: 1 });
    console.error(`  ${status}: okit ${o.req_per_s}/s, bare ${b.req_per_s}/s`);
  }
} finally {
  bare?.kill();
  await server?.stop();
  await pgsrv.stop();
}
table(rows);
writeResult('get-throughput', {
  seconds: SECONDS,
  connections: CONNS,
  method: 'raw keep-alive sockets from one Node process, next request on each connection when the previous response is complete; servers each in their own process; the bare server returns the same body and ETag',
  rows,
});
