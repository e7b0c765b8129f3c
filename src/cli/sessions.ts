/**
 * `okit sessions list --tenant T` and `okit sessions revoke (--id S | --link L | --tenant T)`:
 * the console's sessions (src/http/sessions.ts). A session signed in with a token also ends
 * when the token is revoked (`okit tokens revoke`); a link session has no token, so this is
 * how it ends before its expiry.
 */
import type { Command } from 'commander';
import { listSessions, revokeSessions } from '../http/sessions.js';
import { systemClock } from '../util/clock.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';
import { jsonLine, table } from './table.js';

export interface SessionsListOptions {
  tenant: string;
  json?: boolean;
}

export async function runSessionsList(opts: SessionsListOptions, io: Io): Promise<number> {
  const rows = await withDb(io, ({ pool }) => listSessions(pool, opts.tenant, systemClock.now()));
  if (opts.json) for (const r of rows) jsonLine(io, r);
  else table(io, ['ID', 'SCOPE', 'VIA', 'CREATED', 'EXPIRES', 'STATE'], rows.map((r) => [r.id, r.scope, r.via, r.created_at, r.expires_at, r.state]));
  return EXIT.OK;
}

export interface SessionsRevokeOptions {
  id?: string;
  link?: string;
  tenant?: string;
}

/** Exit 0 when a session ended, 1 when none was live (as `okit tokens revoke` of an unknown id). */
export async function runSessionsRevoke(opts: SessionsRevokeOptions, io: Io): Promise<number> {
  const n = await withDb(io, ({ pool }) => revokeSessions(pool, opts, systemClock.now()));
  io.out(`revoked ${n} session(s)`);
  return n > 0 || opts.link !== undefined ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command, io: Io): void {
  const s = program.command('sessions').description('console sessions: list them, end them');
  s.command('list')
    .description("a tenant's console sessions, newest first, with what they signed in with and their state")
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--json', 'one JSON object per line')
    .action(action(io, (o: SessionsListOptions) => runSessionsList(o, io)));
  s.command('revoke')
    .description('end console sessions now (other servers: within 5 s): one by --id, those of a sign-in link by --link (an unused link stops working too), or all of a --tenant')
    .option('--id <session id>', 'one session (an ID from okit sessions list)')
    .option('--link <link id>', 'every session signed in by this link (the id after link: in VIA)')
    .option('--tenant <tenant>', "every session of the tenant")
    .action(action(io, (o: SessionsRevokeOptions) => runSessionsRevoke(o, io)));
}
