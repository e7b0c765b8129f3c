import pg from 'pg';
import { OkitError } from '../errors.js';
import { EmbeddedPostgres, okitHome } from './embedded.js';

/**
 * node-postgres reads anything as a connection string (`notaurl` becomes host `base`) and
 * throws a bare TypeError for what its parser cannot read (`postgres://[::1/x`): refuse both
 * here, as a typed error, with pg's own parser. Several hosts (`h1,h2`, libpq's failover
 * syntax) are named as such: pg 8 does not support them (OFFLINE.md, Failover).
 */
export function checkDatabaseUrl(url: string, name = 'DATABASE_URL'): string {
  if (!/^(postgres|postgresql|socket):/i.test(url) && !url.startsWith('/'))
    throw new OkitError('INVALID_INPUT', `${name} must be a postgres:// or postgresql:// URL`);
  const authority = /^postgres(?:ql)?:\/\/([^/?#]*)/i.exec(url)?.[1] ?? '';
  if (authority.replace(/^.*@/, '').replace(/\[[^\]]*\]/g, '').includes(','))
    throw new OkitError(
      'INVALID_INPUT',
      `${name}: several hosts are not supported (node-postgres connects to one); point it at the primary, and after a failover at the new one (OFFLINE.md, Failover)`,
    );
  try {
    new pg.Client({ connectionString: url }); // parses only; connects nothing
  } catch (e) {
    throw new OkitError('INVALID_INPUT', `${name} is not a valid connection string: ${(e as Error).message}`);
  }
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
