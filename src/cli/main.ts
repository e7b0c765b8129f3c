#!/usr/bin/env node
import { CommanderError } from 'commander';
import { programWith } from './base.js';
import { EXIT, type Register } from './io.js';

// `okit ... | head` closes our stdout early: stop quietly, as other command-line tools do.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });

// The offline bundle commands start without loading the rest of the kit (pg, prom-client, the
// HTTP server: about 0.2 s before verify reads its first byte); the same command, the same help.
const OFFLINE: Record<string, () => Promise<{ register: Register }>> = {
  verify: () => import('./verify.js'),
  replay: () => import('./replay.js'),
};
const offline = OFFLINE[process.argv[2] ?? ''];
const program = offline ? programWith([(await offline()).register]) : (await import('./program.js')).buildProgram();

program
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    process.stderr.write(`okit: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = EXIT.INTERNAL;
  });
