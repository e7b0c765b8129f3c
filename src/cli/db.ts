import type { Command } from 'commander';
import { resolveDatabase } from '../db/connect.js';
import { EmbeddedPostgres, okitHome } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { OkitError } from '../errors.js';
import { action, EXIT, type Io } from './io.js';

function embedded(io: Io): EmbeddedPostgres {
  if (io.env.DATABASE_URL)
    throw new OkitError('INVALID_INPUT', 'DATABASE_URL is set: okit does not manage that server (unset it to use the embedded one)');
  return new EmbeddedPostgres(okitHome(io.env, io.cwd), { log: (s) => io.err(`okit: ${s}`) });
}

export async function runDb(cmd: 'start' | 'stop' | 'status' | 'url' | 'migrate', io: Io): Promise<number> {
  switch (cmd) {
    case 'start': {
      const pg = embedded(io);
      const started = await pg.start();
      io.out(started ? `started ${pg.url().replace(/:[^:@/]+@/, ':***@')}` : 'already running');
      return EXIT.OK;
    }
    case 'stop': {
      const stopped = await embedded(io).stop();
      io.out(stopped ? 'stopped' : 'not running');
      return EXIT.OK;
    }
    case 'status': {
      const pg = embedded(io);
      const running = await pg.running();
      const info = pg.info();
      io.out(`${running ? 'running' : 'stopped'}  data=${pg.dataDir}${info?.port ? `  port=${info.port}` : ''}`);
      return running ? EXIT.OK : EXIT.CHECK_FAILED;
    }
    case 'url': {
      if (io.env.DATABASE_URL) {
        io.out(io.env.DATABASE_URL);
        return EXIT.OK;
      }
      io.out(embedded(io).url());
      return EXIT.OK;
    }
    case 'migrate': {
      const db = await resolveDatabase({ env: io.env, cwd: io.cwd, log: (s) => io.err(`okit: ${s}`) });
      try {
        const r = await migrate(db.url);
        io.out(r.applied.length ? `applied ${r.applied.join(', ')}` : `up to date (version ${r.current})`);
      } finally {
        await db.release();
      }
      return EXIT.OK;
    }
  }
}

export function register(program: Command, io: Io): void {
  const db = program.command('db').description('manage the database (embedded Postgres unless DATABASE_URL is set)');
  db.command('start').description('start the embedded Postgres and keep it running').action(action(io, () => runDb('start', io)));
  db.command('stop').description('stop the embedded Postgres').action(action(io, () => runDb('stop', io)));
  db.command('status').description('is the embedded Postgres running (exit 0) or not (exit 1)').action(action(io, () => runDb('status', io)));
  db.command('url').description('print the connection string').action(action(io, () => runDb('url', io)));
  db.command('migrate').description('apply pending migrations (idempotent; refuses a changed applied migration)').action(action(io, () => runDb('migrate', io)));
}
