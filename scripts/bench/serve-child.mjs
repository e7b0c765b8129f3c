// The server under test, in its own process: the same startServer() that `okit serve` runs,
// plus an IPC channel so a benchmark can ask how many waiters are armed and how much memory
// the server holds (its own RSS, not the load generator's). Started by lib.mjs spawnServer().
import { createPool } from '../../dist/db/pool.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { startServer } from '../../dist/http/server.js';

const url = process.env.DATABASE_URL;
const pool = createPool(url, { max: Number(process.env.OKIT_POOL_MAX ?? 10) });
const ledger = new Ledger(pool);
// OKIT_BENCH_TELEMETRY=off runs the server as `okit serve --no-telemetry` (the telemetry benchmark's baseline).
const srv = await startServer({
  url,
  pool,
  ledger,
  host: '127.0.0.1',
  port: 0,
  log: (l) => process.env.OKIT_BENCH_LOG && console.error('server: ' + l),
  telemetry: process.env.OKIT_BENCH_TELEMETRY !== 'off',
  metricsOptions: {
    ...(process.env.OKIT_BENCH_METRICS_DB_CACHE_MS ? { dbCacheMs: Number(process.env.OKIT_BENCH_METRICS_DB_CACHE_MS) } : {}),
    ...(process.env.OKIT_BENCH_METRICS_FINISHED_CACHE_MS ? { finishedCacheMs: Number(process.env.OKIT_BENCH_METRICS_FINISHED_CACHE_MS) } : {}),
  },
});
let peakRss = process.memoryUsage().rss;
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();
process.on('message', async (m) => {
  if (m.cmd === 'stats') {
    const mem = process.memoryUsage();
    peakRss = Math.max(peakRss, mem.rss);
    process.send({ id: m.id, waiters: srv.waiters.size, claimWaiters: srv.claims.size, claimStats: { ...srv.claims.stats }, rss: mem.rss, peakRss, heapUsed: mem.heapUsed, cache: { hits: srv.store.cache.hits, misses: srv.store.cache.misses }, notifications: srv.listener.stats.notifications, telemetry: srv.telemetry ? { ...srv.telemetry.queue.stats, depth: srv.telemetry.queue.depth } : null });
  } else if (m.cmd === 'gc') {
    globalThis.gc?.();
    process.send({ id: m.id });
  } else if (m.cmd === 'stop') {
    await srv.close();
    await pool.end();
    process.send({ id: m.id });
    process.exit(0);
  }
});
process.send({ ready: true, baseUrl: srv.baseUrl });
