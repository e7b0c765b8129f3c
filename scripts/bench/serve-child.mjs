// The server under test, in its own process: the same startServer() as `okit serve`, with its
// pool (SERVE_DB_TIMEOUTS), plus an IPC channel so a benchmark can ask how many waiters are
// armed, how much memory the server holds (its own RSS, not the load generator's), its pool's
// connections and its event-loop lag. Started by lib.mjs spawnServer(). The load generator is
// one address, so the per-address connection cap is lifted to the total cap.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createPool, SERVE_DB_TIMEOUTS } from '../../dist/db/pool.js';
import { defaultLimits } from '../../dist/http/limits.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { startServer } from '../../dist/http/server.js';

const url = process.env.DATABASE_URL;
const pool = createPool(url, { max: Number(process.env.OKIT_POOL_MAX ?? 10), timeouts: SERVE_DB_TIMEOUTS });
const ledger = new Ledger(pool);
const d = defaultLimits();
// OKIT_BENCH_TELEMETRY=off runs the server as `okit serve --no-telemetry` (the telemetry benchmark's baseline).
const srv = await startServer({
  url,
  pool,
  ledger,
  host: '127.0.0.1',
  port: 0,
  limits: { maxConnectionsPerIp: d.maxConnections },
  log: (l) => process.env.OKIT_BENCH_LOG && console.error('server: ' + l),
  telemetry: process.env.OKIT_BENCH_TELEMETRY !== 'off',
  metricsOptions: {
    ...(process.env.OKIT_BENCH_METRICS_DB_CACHE_MS ? { dbCacheMs: Number(process.env.OKIT_BENCH_METRICS_DB_CACHE_MS) } : {}),
    ...(process.env.OKIT_BENCH_METRICS_FINISHED_CACHE_MS ? { finishedCacheMs: Number(process.env.OKIT_BENCH_METRICS_FINISHED_CACHE_MS) } : {}),
  },
});
let peakRss = process.memoryUsage().rss;
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
process.on('message', async (m) => {
  if (m.cmd === 'stats') {
    const mem = process.memoryUsage();
    peakRss = Math.max(peakRss, mem.rss);
    const ms = (ns) => Math.round(ns / 1e4) / 100;
    const loop = { p50_ms: ms(lag.percentile(50)), p99_ms: ms(lag.percentile(99)), max_ms: ms(lag.max) };
    if (m.resetLag) lag.reset();
    process.send({
      id: m.id,
      waiters: srv.waiters.size,
      claimWaiters: srv.claims.size,
      claimStats: { ...srv.claims.stats },
      rss: mem.rss,
      peakRss,
      heapUsed: mem.heapUsed,
      cache: { hits: srv.store.cache.hits, misses: srv.store.cache.misses },
      notifications: srv.listener.stats.notifications,
      pool: { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount },
      connections: srv.connections.total,
      refused: srv.connections.stats.refused,
      loop,
      telemetry: srv.telemetry ? { ...srv.telemetry.queue.stats, depth: srv.telemetry.queue.depth } : null,
      serving: srv.listener.ready && srv.health.up, // not `ready`: lib.mjs reads that as the start-up message
    });
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
