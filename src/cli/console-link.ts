/**
 * `okit console-link --tenant T --scope read|admin [--ttl 15m] [--base-url URL]`: prints one
 * URL that signs a browser into the console once (src/http/sessions.ts). Only the code's
 * sha256 is stored; the code works once, before its TTL runs out.
 */
import type { Command } from 'commander';
import { OkitError } from '../errors.js';
import { createLink, MAX_LINK_TTL_SECONDS } from '../http/sessions.js';
import { parseDuration } from '../util/duration.js';
import { withDb } from './context.js';
import { action, EXIT, type Io } from './io.js';

export interface ConsoleLinkOptions {
  tenant: string;
  scope: string;
  ttl?: string;
  baseUrl?: string;
}

/** `http(s)://host[:port]`, nothing after it (the link adds `/#/signin?link=…`). */
function baseUrl(raw: string): string {
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== ''))
    throw new OkitError('INVALID_INPUT', `--base-url: must be http(s)://host[:port] where okit serve answers, got ${JSON.stringify(raw)}`, { field: 'base-url' });
  return u.origin;
}

export async function runConsoleLink(opts: ConsoleLinkOptions, io: Io): Promise<number> {
  const ttl = parseDuration(opts.ttl ?? '15m', '--ttl');
  if (ttl > MAX_LINK_TTL_SECONDS) throw new OkitError('INVALID_INPUT', `--ttl: at most ${MAX_LINK_TTL_SECONDS / 3600}h (a sign-in link is for now, not for later)`, { field: 'ttl' });
  const base = baseUrl(opts.baseUrl ?? io.env.OKIT_URL ?? 'http://127.0.0.1:8080');
  const l = await withDb(io, ({ pool }) => createLink(pool, { tenant: opts.tenant, scope: opts.scope, ttlSeconds: ttl }));
  io.out(`${base}/#/signin?link=${l.code}`);
  io.err(`okit: sign-in link for tenant ${l.tenant}, scope ${l.scope}; it works once, until ${l.expires_at}`);
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  program
    .command('console-link')
    .description('print a one-time link that signs a browser into the console')
    .requiredOption('--tenant <tenant>', 'tenant the session acts for')
    .requiredOption('--scope <scope>', 'read | admin (admin may cancel, retry, pause)')
    .option('--ttl <duration>', 'how long the link stays valid, e.g. 15m, 1h (at most 24h)', '15m')
    .option('--base-url <url>', 'where okit serve answers (default $OKIT_URL or http://127.0.0.1:8080)')
    .action(action(io, (o: ConsoleLinkOptions) => runConsoleLink(o, io)));
}
