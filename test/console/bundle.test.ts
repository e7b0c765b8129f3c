/**
 * The built page (dist/console, made by `npm run build`, which `npm test` runs first): small
 * (shipped JS ≤ 60 KB gzipped), no inline script or style for the CSP, nothing from elsewhere.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { expect, it } from 'vitest';

const DIR = new URL('../../dist/console/', import.meta.url);
const read = (f: string) => readFileSync(new URL(f, DIR));

it('ships index.html, app.js and app.css, and the JS is at most 60 KB gzipped', () => {
  const files = readdirSync(DIR).sort();
  expect(files).toEqual(['app.css', 'app.js', 'index.html']);
  const js = files.filter((f) => f.endsWith('.js')).reduce((n, f) => n + gzipSync(read(f), { level: 9 }).length, 0);
  console.log(`console JS: ${read('app.js').length} bytes, ${js} gzipped`);
  expect(js).toBeGreaterThan(5_000); // a real bundle (Preact and the views), not an empty file
  expect(js).toBeLessThanOrEqual(60 * 1024);
});

it('index.html has no inline script or style and loads only its own files', () => {
  const html = read('index.html').toString();
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
  expect(scripts.length).toBe(1);
  for (const [, attrs, body] of scripts) {
    expect(attrs).toMatch(/src="\/console\/app\.js"/);
    expect(body!.trim()).toBe('');
  }
  expect(html).not.toMatch(/<style\b/i);
  expect(html).not.toMatch(/\sstyle=/i);
  expect(html).not.toMatch(/\son[a-z]+=/i);
  expect(html).toMatch(/<link rel="stylesheet" href="\/console\/app\.css"/);
});

it('nothing is fetched from outside: no URL but XML namespace names, no @import, no web fonts', () => {
  for (const f of ['index.html', 'app.js', 'app.css']) {
    const text = read(f).toString();
    const urls = [...text.matchAll(/(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map((m) => m[0]);
    expect(urls.filter((u) => !/^http:\/\/www\.w3\.org\/(1998\/Math\/MathML|1999\/xhtml|2000\/svg)$/.test(u)), f).toEqual([]);
  }
  const css = read('app.css').toString();
  expect(css).not.toMatch(/@import|@font-face|url\(/);
  // Rendering is text only: no innerHTML or dangerouslySetInnerHTML in the page's own code.
  for (const f of readdirSync(new URL('../../src/console/', import.meta.url))) {
    const src = readFileSync(new URL(`../../src/console/${f}`, import.meta.url), 'utf8');
    expect(src, f).not.toMatch(/innerHTML|dangerouslySetInnerHTML|insertAdjacentHTML|document\.write|eval\(/);
  }
});
