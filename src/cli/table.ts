/** Plain-text tables for the control-plane commands; every cell escaped (util/terminal.ts) before it is measured. */
import { terminalLine } from '../util/terminal.js';

export function table(io: { out(l: string): void }, head: string[], rows: Array<Array<string | number | null | undefined>>): void {
  const cells = rows.map((r) => r.map((c) => terminalLine(c === null || c === undefined ? '-' : String(c))));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length))).join('  ').trimEnd();
  io.out(line(head));
  for (const r of cells) io.out(line(r));
}

/** "3m", "2h 5m", "4d": how long ago `iso` was, from `now` (ms). */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

/** One JSON value per line, control characters escaped (a --json line stays valid JSON). */
export function jsonLine(io: { out(l: string): void }, v: unknown): void {
  io.out(terminalLine(JSON.stringify(v)));
}
