import type { Command } from 'commander';
import { createToken, revokeToken } from '../http/tokens.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface TokensCreateOptions {
  tenant: string;
  scope: string;
  label?: string;
}

/** Prints the token once on stdout (only its sha256 is stored); details on stderr. */
export async function runTokensCreate(opts: TokensCreateOptions, io: Io): Promise<number> {
  const t = await withDb(io, ({ pool }) => createToken(pool, { tenant: opts.tenant, scope: opts.scope, label: opts.label }));
  io.out(t.token);
  io.err(`okit: token ${t.id} for tenant ${t.tenant}, scope ${t.scope}; it is shown only this once`);
  return EXIT.OK;
}

export async function runTokensRevoke(id: string, io: Io): Promise<number> {
  const ok = await withDb(io, ({ pool }) => revokeToken(pool, id));
  io.out(ok ? `revoked ${id}` : `no active token ${id}`);
  return ok ? EXIT.OK : EXIT.CHECK_FAILED;
}

export function register(program: Command, io: Io): void {
  const tokens = program.command('tokens').description('bearer tokens for the HTTP API');
  tokens
    .command('create')
    .description('create a token for a tenant and print it once')
    .requiredOption('--tenant <tenant>', 'tenant the token acts for')
    .requiredOption('--scope <scope>', 'read | worker | admin (each includes the ones before), or metrics (GET /metrics only)')
    .option('--label <label>', 'a note to recognise it by')
    .action(action(io, (o: TokensCreateOptions) => runTokensCreate(o, io)));
  tokens
    .command('revoke <id>')
    .description('revoke a token by its id, and the console sessions signed in with it (within 5 s on every server)')
    .action(action(io, (id: string) => runTokensRevoke(id, io)));
}
