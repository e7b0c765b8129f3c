// `okit serve` in a child process, as the CLI runs it (pool with SERVE_DB_TIMEOUTS, the same
// startServer()), with ServerOptions from OKIT_TEST_SERVER (JSON), so that a test can count
// the server's own file descriptors in /proc/<pid>/fd. Log lines go to stderr, one per line.
// Started by startChildServer() in child-server.ts; imports the build (npm test builds first).
import { createPool, SERVE_DB_TIMEOUTS } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { startServer } from '../../dist/http/server.js';

const url = process.env.DATABASE_URL;
const opts = JSON.parse(process.env.OKIT_TEST_SERVER ?? '{}');
const pool = createPool(url, { max: 10, timeouts: SERVE_DB_TIMEOUTS });
const srv = await startServer({ url, pool, ledger: new Ledger(pool), host: '127.0.0.1', port: 0, log: (l) => process.stderr.write(`okit: ${l}\n`), ...opts });
process.on('message', async (m) => {
  if (m.cmd === 'stats') process.send({ id: m.id, connections: srv.connections.total, refused: srv.connections.stats.refused, waiters: srv.waiters.size });
  else if (m.cmd === 'stop') {
    await srv.close();
    await pool.end();
    process.send({ id: m.id });
    process.exit(0);
  }
});
process.send({ ready: true, baseUrl: srv.baseUrl });
