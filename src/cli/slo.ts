import type { Command } from 'commander';
import * as v from '../ledger/validate.js';
import { OkitError } from '../errors.js';
import { isSurface, SURFACES } from '../telemetry/events.js';
import { pruneTelemetry } from '../telemetry/prune.js';
import { sloReport, type SloReport, type SloRow } from '../telemetry/slo.js';
import { systemClock } from '../util/clock.js';
import { durationMicros } from '../util/duration.js';
import { formatMicros } from '../util/time.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface SloReportOptions {
  since?: string;
  surface?: string;
  tenant?: string;
  json?: boolean;
}

const f = (x: number | null) => (x === null ? '-' : x.toFixed(1));

function table(rows: SloRow[]): string[] {
  const head = ['surface', 'kind', 'events', 'p50_ms', 'p95_ms', 'p99_ms', 'target_p50', 'target_p95', 'over_p95', 'timeouts', 'errors', 'server_p95_ms', 'verdict'];
  const body = rows.map((r) => [
    r.surface,
    r.kind ?? '(all)',
    String(r.events),
    f(r.p50_ms),
    f(r.p95_ms),
    f(r.p99_ms),
    String(r.p50_target_ms),
    String(r.p95_target_ms),
    String(r.over_p95),
    String(r.timeouts),
    String(r.errors),
    f(r.server_p95_ms),
    r.breaches.length ? `BREACH ${r.breaches.join('+')}` : r.events ? 'ok' : '-',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(head), ...body.map(line)];
}

export function formatReport(r: SloReport, window: string): string[] {
  const out = [`TTFS SLO report ${r.since} .. ${r.until} (${window}), ${r.tenant ? `tenant ${r.tenant}` : 'all tenants'}${r.surface ? `, surface ${r.surface}` : ''}`];
  if (r.rows.length === 0) {
    out.push('no time-to-first-signal telemetry in this window');
    return out;
  }
  out.push(...table(r.rows));
  if (r.breaching_hours.length) {
    out.push('breaching hours (UTC; a tenant\'s surface with its hourly p50 or p95 above target):');
    for (const h of r.breaching_hours)
      out.push(`  ${h.hour.slice(0, 16)}Z  ${h.tenant}  ${h.surface}  p50 ${h.p50_ms} ms / ${h.p50_target_ms}, p95 ${h.p95_ms} ms / ${h.p95_target_ms}  (${h.p95_breaches} of ${h.total_signals} over p95)`);
  } else out.push('breaching hours: none');
  out.push(r.breached ? `result: BREACH: ${r.breaches.join('; ')}` : 'result: every surface within its targets');
  return out;
}

/** Exit 0 within targets (or no telemetry), 1 when a surface's p50 or p95 over the window misses its target. */
export async function runSloReport(opts: SloReportOptions, io: Io): Promise<number> {
  const window = opts.since ?? '24h';
  const span = durationMicros(window, '--since');
  if (opts.surface !== undefined && !isSurface(opts.surface)) throw new OkitError('INVALID_INPUT', `--surface: must be one of ${SURFACES.join(', ')}`);
  const tenant = opts.tenant === undefined ? null : v.tenant(opts.tenant);
  const until = systemClock.now();
  const r = await withDb(io, ({ pool }) => sloReport(pool, { since: until - span, until, tenant, surface: opts.surface ?? null }));
  if (opts.json) io.out(JSON.stringify(r));
  else for (const l of formatReport(r, window)) io.out(l);
  return r.breached ? EXIT.CHECK_FAILED : EXIT.OK;
}

export interface PruneOptions {
  olderThan: string;
}

export async function runPruneTelemetry(opts: PruneOptions, io: Io): Promise<number> {
  const age = durationMicros(opts.olderThan, '--older-than');
  const before = systemClock.now() - age;
  const n = await withDb(io, ({ pool }) => pruneTelemetry(pool, before));
  io.out(`pruned ${n} telemetry event(s) older than ${formatMicros(before)} (ledger history is never pruned)`);
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  const slo = program.command('slo').description('time-to-first-signal objectives, from the telemetry surfaces report');
  slo
    .command('report')
    .description('p50/p95/p99 per surface and kind against the targets, and the breaching hours (exit 1 on a breach)')
    .option('--since <duration>', 'window ending now, e.g. 24h, 7d, 30m', '24h')
    .option('--surface <surface>', 'only this surface: ui, cli or ci')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--json', 'print the report as one JSON object')
    .action(action(io, (o: SloReportOptions) => runSloReport(o, io)));
  const prune = program.command('prune').description('delete old operational data (never the ledger history)');
  prune
    .command('telemetry')
    .description('delete time-to-first-signal telemetry older than a duration')
    .requiredOption('--older-than <duration>', 'e.g. 90d')
    .action(action(io, (o: PruneOptions) => runPruneTelemetry(o, io)));
}
