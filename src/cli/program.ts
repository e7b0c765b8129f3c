import type { Command } from 'commander';
import { programWith } from './base.js';
import { processIo, type Register } from './io.js';
import { register as db } from './db.js';
import { register as demo } from './demo.js';
import { register as ledger } from './ledger.js';
import { register as job } from './job.js';
import { register as serve } from './serve.js';
import { register as simulate } from './simulate.js';
import { register as tokens } from './tokens.js';
import { register as consoleLink } from './console-link.js';
import { register as sessions } from './sessions.js';
import { register as keys } from './keys.js';
import { register as exportCmd } from './export.js';
import { register as verify } from './verify.js';
import { register as replay } from './replay.js';
import { register as slo } from './slo.js';
import { register as control } from './control.js';
import { register as work } from './work.js';

// One line per command module; each registers its own subcommands.
const COMMANDS: Register[] = [demo, db, ledger, simulate, serve, tokens, consoleLink, sessions, job, control, keys, exportCmd, verify, replay, slo, work];

export function buildProgram(io = processIo): Command {
  return programWith(COMMANDS, io);
}
