import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { processIo, type Register } from './io.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The okit program with the given command modules registered. */
export function programWith(commands: readonly Register[], io = processIo): Command {
  const program = new Command('okit')
    .description('offline-kit: a Postgres-only job ledger with first signals and signed audit bundles')
    .version(pkg.version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => io.err(s.trimEnd()), writeOut: (s) => io.out(s.trimEnd()) });
  for (const reg of commands) reg(program, io);
  program.commands.forEach(function override(c: Command) {
    c.exitOverride();
    c.commands.forEach(override);
  });
  return program;
}
