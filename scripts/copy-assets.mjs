// Copies non-TypeScript runtime assets (SQL migrations) next to the compiled code.
// The folder is replaced, not merged: a renamed or removed migration must not linger in dist/.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
rmSync('dist/db/migrations', { recursive: true, force: true });
mkdirSync('dist/db/migrations', { recursive: true });
cpSync('src/db/migrations', 'dist/db/migrations', { recursive: true });
