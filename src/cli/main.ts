#!/usr/bin/env node
import { CommanderError } from 'commander';
import { EXIT } from './io.js';
import { buildProgram } from './program.js';

// `okit ... | head` closes our stdout early: stop quietly, as other command-line tools do.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });

buildProgram()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return;
    }
    process.stderr.write(`okit: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = EXIT.INTERNAL;
  });
