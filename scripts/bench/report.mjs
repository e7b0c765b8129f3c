// Prints the figures of scripts/bench/results/*.json as Markdown tables (for README "Results").
// Usage: node scripts/bench/report.mjs
import fs from 'node:fs';
import path from 'node:path';
import { RESULTS } from './lib.mjs';

const load = (name) => {
  const f = path.join(RESULTS, `${name}.json`);
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : null;
};
const md = (rows, cols) => {
  if (!rows?.length) return '_(not measured)_\n';
  const c = cols ?? Object.keys(rows[0]);
  const fmt = (v) => (v === undefined || v === null ? '' : typeof v === 'number' ? (Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100)) : String(v));
  return [`| ${c.join(' | ')} |`, `| ${c.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${c.map((k) => fmt(r[k])).join(' | ')} |`)].join('\n') + '\n';
};

const out = [];
const lat = load('signal-latency');
if (lat) {
  out.push('**Signal latency** (commit → watcher holds the new ETag, ms; baseline: bare `pg` LISTEN)\n');
  out.push(md(lat.rows, ['mode', 'watchers', 'deliveries', 'p50_ms', 'p95_ms', 'p99_ms', 'pg_p50_ms', 'pg_p99_ms', 'ratio_p50', 'ratio_p99']));
}
const fan = load('fanout');
if (fan?.memory) {
  out.push(`**Fan-out**: ${fan.waiters} long-poll waiters, one job each; lost updates: **${fan.lost_updates}**; ${fan.long_poll_timeouts ?? '?'} long-polls timed out (30 s) and re-polled during the ${fan.change_seconds} s it took to change all jobs\n`);
  out.push(md(fan.memory));
  out.push(md(fan.wake));
}
const get = load('get-throughput');
if (get) {
  out.push(`**First-signal GET** (${get.connections} keep-alive connections, ${get.seconds} s each)\n`);
  out.push(md(get.rows, ['status', 'server', 'req_per_s', 'p50_ms', 'p99_ms', 'ratio_vs_bare']));
}
const lt = load('ledger-throughput');
if (lt) {
  const load = lt.load_average ? `; load average ${lt.load_average.start} at the start, ${lt.load_average.end} at the end` : '';
  out.push(`**Ledger throughput** (enqueue, then claim → progress → complete; ratios are okit's jobs/s over the row's, same run${load})\n`);
  out.push(md(lt.rows, ['system', 'jobs', 'workers', 'enqueue_per_s', 'process_per_s', 'avg_batch', 'okit_1t_ratio', 'okit_8t_ratio', 'enqueue_ratio']));
  if (lt.enqueue_batch?.length) {
    out.push(`**Batch enqueue** (${lt.enqueue_batch[0].jobs} jobs in calls of ${lt.enqueue_batch[0].batch}, one call at a time; okit_ratio = okit / row)\n`);
    out.push(md(lt.enqueue_batch, ['system', 'enqueue_per_s', 'okit_ratio']));
  }
  if (lt.latency?.length) {
    out.push('**Transition latency** (each okit claim, progress and complete call, ms)\n');
    out.push(md(lt.latency, ['system', 'jobs', 'workers', 'transition_p50_ms', 'transition_p99_ms']));
  }
}
const lb = load('ledger-breakdown');
if (lb) {
  out.push('**Ledger batch breakdown** (medians, ms; messages = round trips per batch transaction)\n');
  out.push(md(lb.rows, ['load', 'op', 'units_per_batch', 'messages', 'total_ms', 'tx_ms', 'head_locked_ms', 'bare_commit_ms', 'max_tenant_tx_per_s']));
}
// A size run on its own (OKIT_BENCH_RESULT=export-1000k, verify-replay-1000k) adds its rows.
const withSizeRuns = (name) => {
  const runs = [load(name), load(`${name}-1000k`)].filter(Boolean);
  return runs.length ? { ...runs[0], rows: runs.flatMap((r) => r.rows.map((x) => ({ ...x, load: r.load_average_during_rounds }))) } : null;
};
const ex = withSizeRuns('export');
if (ex) {
  out.push(`**Export** (${ex.okit_cli_note ?? "okit export of this build"}; ratio = okit / psql within a round, median over rounds; load = 1-min load average during the rounds)\n`);
  out.push(md(ex.rows, ['history_rows', 'rounds', 'okit_export_s', 'psql_copy_s', 'ratio', 'ratio_min_max', 'okit_cpu_s', 'export_peak_rss_mib', 'bundle_mib', 'load']));
}
const vr = withSizeRuns('verify-replay');
if (vr) {
  out.push('**Verify and replay** (ratio = verify / sha256sum within a round, median over rounds; CPU summed over threads)\n');
  out.push(md(vr.rows, ['history_rows', 'rounds', 'bundle_mib', 'sha256sum_s', 'verify_s', 'verify_ratio', 'verify_ratio_min_max', 'verify_cpu_s', 'sha256sum_cpu_s', 'verify_cpu_ratio', 'verify_peak_rss_mib', 'replay_s', 'replay_peak_rss_mib', 'into_s', 'into_peak_rss_mib', 'load']));
}
const tel = load('telemetry');
if (tel) {
  out.push(`**Telemetry on vs off** (first-signal GET, ${tel.connections} keep-alive connections, ${tel.rounds} alternating rounds of ${tel.seconds} s; CPU = server process µs per request)\n`);
  out.push(md(tel.get, ['case', 'on_req_per_s', 'off_req_per_s', 'ratio_median', 'ratio_total', 'on_cpu_us_per_req', 'off_cpu_us_per_req', 'cpu_ratio', 'met']));
  out.push('**GET /metrics with 100,000 jobs** (30 scrapes 200 ms apart, after 3 warm-up)\n');
  out.push(md(tel.metrics_scrape, ['scrape', 'p50_ms', 'p95_ms', 'max_ms', 'waiting_query_ms', 'finished_query_ms', 'exposition_kib', 'samples', 'met']));
  out.push('**Long-poll delivery latency, telemetry on vs off** (signal-latency.mjs, four alternating runs pooled)\n');
  out.push(md(tel.long_poll_latency, ['mode', 'watchers', 'deliveries_each', 'on_p50_ms', 'off_p50_ms', 'on_p99_ms', 'off_p99_ms', 'ratio_p50', 'ratio_p99']));
}
const soak = load('soak');
if (soak) {
  const sm = soak.summary;
  out.push(
    `**Soak** (${sm.minutes} min of steady mixed load, \`${soak.command}\`; sampled every 10 s, shown every 5 min; 5xx answers: **${sm.responses_5xx}**; samples not ready: ${sm.not_ready_samples})\n`,
  );
  const every = soak.samples.filter((x, i) => i === 0 || x.t_s % 300 < 10 || i === soak.samples.length - 1);
  out.push(
    md(
      every.map((x) => ({ min: Math.round(x.t_s / 60), rss_mib: x.rss_mib, heap_mib: x.heap_mib, fds: x.fds, http_conns: x.http_connections, pool: x.pool_total, pg_conns: x.pg_connections, loop_p99_ms: x.loop_p99_ms })),
    ),
  );
}
console.log(out.join('\n'));
