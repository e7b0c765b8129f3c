import { OkitError } from '../errors.js';
import { EmbeddedPostgres, okitHome } from './embedded.js';

/** node-postgres reads anything as a connection string (`notaurl` becomes host `base`): refuse early. */
export function checkDatabaseUrl(url: string): string {
  if (!/^(postgres|postgresql|socket):/i.test(url) && !url.startsWith('/'))
    throw new OkitError('INVALID_INPUT', 'DATABASE_URL must be a postgres:// or postgresql:// URL');
  return url;
}

export interface Database {
  url: string;
  /** The embedded cluster, when DATABASE_URL was not set. */
  embedded?: EmbeddedPostgres;
  /** Stops the embedded cluster if this process started it. */
  release(): Promise<void>;
}

/**
 * DATABASE_URL when set; otherwise the embedded cluster under $OKIT_HOME, started on demand.
 * A cluster this process started is stopped by release() unless `keep` is set
 * (`okit db start` keeps it).
 */
export async function resolveDatabase(
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; log?: (s: string) => void; keep?: boolean } = {},
): Promise<Database> {
  const env = opts.env ?? process.env;
  if (env.DATABASE_URL) return { url: checkDatabaseUrl(env.DATABASE_URL), release: async () => undefined };
  const embedded = new EmbeddedPostgres(okitHome(env, opts.cwd), { log: opts.log });
  const started = await embedded.start();
  return {
    url: embedded.url(),
    embedded,
    release: async () => {
      if (started && !opts.keep) await embedded.stop();
    },
  };
}
