// Draws scripts/bench/results/soak.svg from scripts/bench/results/soak.json: the server's RSS and heap, its
// open fds and database connections, and its event-loop lag (p99 per sample) over the soak.
// Plain SVG, no dependency. Usage: node scripts/bench/plot-soak.mjs [soak.json] [out.svg]
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, RESULTS } from './lib.mjs';

const src = process.argv[2] ?? path.join(RESULTS, 'soak.json');
const out = process.argv[3] ?? path.join(RESULTS, 'soak.svg');
if (!fs.existsSync(src)) {
  console.error(`no ${path.relative(ROOT, src)} yet: run scripts/bench/soak.mjs first`);
  process.exit(0);
}
const { samples, summary } = JSON.parse(fs.readFileSync(src, 'utf8'));
const W = 760;
const panelH = 130;
const m = { l: 60, r: 150, t: 40, gap: 36, b: 40 };
const panels = [
  { title: 'memory (MiB)', series: [['rss_mib', 'RSS', '#08519c'], ['heap_mib', 'heap used', '#6baed6']] },
  { title: 'open (count)', series: [['fds', 'server fds', '#a63603'], ['http_connections', 'HTTP connections', '#fd8d3c'], ['pg_connections', 'Postgres connections', '#31a354']] },
  { title: 'event-loop lag (ms)', series: [['loop_p99_ms', 'p99 per 10 s', '#756bb1']] },
];
const H = m.t + panels.length * panelH + (panels.length - 1) * m.gap + m.b;
const pw = W - m.l - m.r;
const tMax = Math.max(...samples.map((s) => s.t_s));
const x = (t) => m.l + (pw * t) / tMax;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
const parts = [];
parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
parts.push(`<text x="${m.l}" y="22" font-size="14" font-weight="bold">Soak: okit serve under steady mixed load for ${summary.minutes} min (sampled every 10 s)</text>`);
panels.forEach((p, i) => {
  const top = m.t + i * (panelH + m.gap);
  const max = Math.max(1, ...p.series.flatMap(([k]) => samples.map((s) => s[k])));
  const niceMax = (() => {
    const e = 10 ** Math.floor(Math.log10(max));
    return [1, 2, 2.5, 5, 10].map((f) => f * e).find((v) => v >= max * 1.1) ?? 10 * e;
  })();
  const y = (v) => top + panelH * (1 - v / niceMax);
  parts.push(`<text x="${m.l}" y="${top - 6}" font-weight="bold">${esc(p.title)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = (niceMax * k) / 4;
    parts.push(`<line x1="${m.l}" y1="${y(v)}" x2="${m.l + pw}" y2="${y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${Number.isInteger(v) ? v : v.toFixed(1)}</text>`);
  }
  for (let t = 0; t <= tMax; t += tMax > 1200 ? 300 : 60) {
    parts.push(`<line x1="${x(t)}" y1="${top}" x2="${x(t)}" y2="${top + panelH}" stroke="#f3f3f3"/>`);
    if (i === panels.length - 1) parts.push(`<text x="${x(t)}" y="${top + panelH + 16}" text-anchor="middle">${Math.round(t / 60)} min</text>`);
  }
  p.series.forEach(([k, label, color], j) => {
    const d = 'M' + samples.map((s) => `${x(s.t_s).toFixed(1)},${y(s[k]).toFixed(1)}`).join('L');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    parts.push(`<line x1="${m.l + pw + 12}" y1="${top + 10 + j * 16}" x2="${m.l + pw + 30}" y2="${top + 10 + j * 16}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${m.l + pw + 34}" y="${top + 14 + j * 16}">${esc(label)}</text>`);
  });
});
parts.push('</svg>');
fs.writeFileSync(out, parts.join('\n') + '\n');
console.log(`wrote ${path.relative(ROOT, out)}`);
