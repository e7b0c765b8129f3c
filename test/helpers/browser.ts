/**
 * Debian's Chromium driven by playwright-core (no downloaded browser): headless, `--no-sandbox`
 * because CI runs as root. `apt-get install chromium` (.ci/run does); OKIT_CHROMIUM overrides the path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './cli.js';

export const CHROMIUM = process.env.OKIT_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots of every browser test land here (gitignored). */
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'console');

export async function launch(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set OKIT_CHROMIUM)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
}

export async function shot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Every dialog, console error and page error a page shows (an XSS would open one). */
export function watch(page: Page): { dialogs: string[]; errors: string[]; csp: string[] } {
  const w = { dialogs: [] as string[], errors: [] as string[], csp: [] as string[] };
  // The page must run under the server's strict CSP without a single violation (no inline style or script).
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) w.csp.push(m.text());
  });
  page.on('dialog', (d) => {
    w.dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => w.errors.push(String(e)));
  return w;
}
