// Draws docs/latency.svg from scripts/bench/results/signal-latency.json: the cumulative
// distribution of signal latency (commit → watcher holds the new ETag) per mode and watcher
// count, with the bare pg LISTEN baseline, on a log time axis. Plain SVG, no dependency.
// Usage: node scripts/bench/plot.mjs [results.json] [out.svg]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, RESULTS } from './lib.mjs';

const src = process.argv[2] ?? path.join(RESULTS, 'signal-latency.json');
const out = process.argv[3] ?? path.join(ROOT, 'docs/latency.svg');
if (!fs.existsSync(src)) {
  console.error(`no ${path.relative(ROOT, src)} yet: run scripts/bench/signal-latency.mjs first`);
  process.exit(0);
}
const data = JSON.parse(fs.readFileSync(src, 'utf8'));
const W = 760;
const H = 440;
const m = { l: 60, r: 190, t: 40, b: 50 };
const pw = W - m.l - m.r;
const ph = H - m.t - m.b;
const X0 = 0.1;
const X1 = 1000;
const x = (ms) => m.l + (pw * (Math.log10(Math.min(X1, Math.max(X0, ms))) - Math.log10(X0))) / (Math.log10(X1) - Math.log10(X0));
const y = (q) => m.t + ph * (1 - q);
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

const series = [];
const colors = { 'long-poll': ['#9ecae1', '#4292c6', '#08519c'], sse: ['#fdae6b', '#f16913', '#a63603'] };
for (const mode of ['long-poll', 'sse']) {
  data.rows.filter((r) => r.mode === mode).forEach((r, i) => series.push({ label: `${mode}, ${r.watchers} watcher${r.watchers === 1 ? '' : 's'}`, samples: r.samples, color: colors[mode][i % 3], dash: '' }));
}
const pg = data.rows.flatMap((r) => r.pg_samples ?? []);
if (pg.length) series.push({ label: 'bare pg LISTEN (baseline)', samples: pg, color: '#333', dash: '5,4' });

function cdf(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const pts = [];
  const step = Math.max(1, Math.floor(n / 400));
  for (let i = 0; i < n; i += step) pts.push([x(s[i]), y((i + 1) / n)]);
  pts.push([x(s[n - 1]), y(1)]);
  return 'M' + pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join('L');
}

const parts = [];
parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
parts.push(`<text x="${m.l}" y="22" font-size="14" font-weight="bold">Signal latency: commit → watcher holds the new ETag (CDF)</text>`);
for (const ms of [0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000]) {
  parts.push(`<line x1="${x(ms)}" y1="${m.t}" x2="${x(ms)}" y2="${m.t + ph}" stroke="#eee"/>`);
  parts.push(`<text x="${x(ms)}" y="${m.t + ph + 16}" text-anchor="middle">${ms}</text>`);
}
for (const q of [0, 0.25, 0.5, 0.75, 0.95, 0.99, 1]) {
  parts.push(`<line x1="${m.l}" y1="${y(q)}" x2="${m.l + pw}" y2="${y(q)}" stroke="#eee"/>`);
  parts.push(`<text x="${m.l - 6}" y="${y(q) + 4}" text-anchor="end">p${Math.round(q * 100)}</text>`);
}
// The targets at 1,000 watchers: p50 ≤ 5 ms, p99 ≤ 25 ms.
parts.push(`<line x1="${x(5)}" y1="${y(0.5)}" x2="${x(5)}" y2="${y(0) }" stroke="#2a2" stroke-dasharray="2,3"/>`);
parts.push(`<line x1="${x(25)}" y1="${y(0.99)}" x2="${x(25)}" y2="${y(0)}" stroke="#2a2" stroke-dasharray="2,3"/>`);
parts.push(`<text x="${x(5) + 3}" y="${y(0.5) - 4}" fill="#2a2">target p50 5 ms</text>`);
parts.push(`<text x="${x(25) + 3}" y="${y(0.99) - 4}" fill="#2a2">target p99 25 ms</text>`);
parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
parts.push(`<text x="${m.l + pw / 2}" y="${H - 12}" text-anchor="middle">milliseconds (log scale)</text>`);
series.forEach((s, i) => {
  parts.push(`<path d="${cdf(s.samples)}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
  const ly = m.t + 10 + i * 18;
  parts.push(`<line x1="${m.l + pw + 12}" y1="${ly}" x2="${m.l + pw + 32}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
  parts.push(`<text x="${m.l + pw + 36}" y="${ly + 4}">${esc(s.label)}</text>`);
});
const mc = data.machine ?? {};
parts.push(`<text x="${m.l + pw + 12}" y="${m.t + ph - 4}" fill="#666">${esc(`${mc.cpus ?? '?'} cores, ${mc.node ?? ''}`)}</text>`);
parts.push('</svg>');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, parts.join('\n') + '\n');
console.log(`wrote ${path.relative(ROOT, out)}`);
