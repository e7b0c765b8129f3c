// Builds the console page into dist/console/: app.js (Preact bundled, minified), app.css and
// index.html. Nothing in it is fetched from elsewhere at run time. The folder is replaced.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const out = 'dist/console';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: 'src/console/app.tsx' },
  outdir: out,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  sourcemap: false,
  logLevel: 'warning',
});
await build({ entryPoints: ['src/console/app.css'], outdir: out, minify: true, logLevel: 'warning' });
copyFileSync('src/console/index.html', `${out}/index.html`);
