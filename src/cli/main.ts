#!/usr/bin/env node
import { CommanderError } from 'commander';
import { EXIT } from './io.js';
import { buildProgram } from './program.js';

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
