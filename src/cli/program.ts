import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { processIo, type Register } from './io.js';
import { register as db } from './db.js';
import { register as demo } from './demo.js';
import { register as ledger } from './ledger.js';
import { register as job } from './job.js';
import { register as serve } from './serve.js';
import { register as simulate } from './simulate.js';
import { register as tokens } from './tokens.js';
import { register as keys } from './keys.js';
import { register as exportCmd } from './export.js';
import { register as verify } from './verify.js';
import { register as replay } from './replay.js';
import { register as slo } from './slo.js';
import { register as control } from './control.js';

// One line per command module; each registers its own subcommands.
const COMMANDS: Register[] = [demo, db, ledger, simulate, serve, tokens, job, control, keys, exportCmd, verify, replay, slo];

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(io = processIo): Command {
  const program = new Command('okit')
    .description('offline-kit: a Postgres-only job ledger with first signals and signed audit bundles')
    .version(pkg.version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => io.err(s.trimEnd()), writeOut: (s) => io.out(s.trimEnd()) });
  for (const reg of COMMANDS) reg(program, io);
  program.commands.forEach(function override(c: Command) {
    c.exitOverride();
    c.commands.forEach(override);
  });
  return program;
}

