import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, unlink, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { generateSigningKey, privatePem, publicPem } from '../bundle/keys.js';
import { OkitError } from '../errors.js';
import { action, EXIT, type Io } from './io.js';

export interface KeysGenerateOptions {
  out: string;
  seedHex?: string;
}

const KEY = 'okit-signing.key';
const PUB = 'okit-signing.pub';

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new OkitError('IO_ERROR', `cannot check ${p}: ${(e as Error).message}`);
  }
}

/**
 * Writes the pair or nothing: both names are checked first; each file is written complete
 * under a temporary name and then hard-linked into place (link never overwrites, so a key
 * that appeared meanwhile is not replaced); if the second link fails, the first is undone.
 */
async function writePair(dir: string, files: Array<{ name: string; text: string; mode: number }>): Promise<void> {
  const present = [];
  for (const f of files) if (await exists(resolve(dir, f.name))) present.push(resolve(dir, f.name));
  if (present.length) throw new OkitError('IO_ERROR', `refusing to overwrite ${present.join(' and ')}: a key is never replaced (remove it, or choose another --out)`);
  const tag = randomBytes(6).toString('hex');
  const temps = files.map((f) => resolve(dir, `.${f.name}.${tag}.tmp`));
  const linked: string[] = [];
  try {
    for (const [i, f] of files.entries()) await writeFile(temps[i]!, f.text, { mode: f.mode, flag: 'wx' });
    for (const [i, f] of files.entries()) {
      await link(temps[i]!, resolve(dir, f.name));
      linked.push(resolve(dir, f.name));
    }
  } catch (e) {
    for (const p of linked) await unlink(p).catch(() => undefined);
    throw new OkitError('IO_ERROR', `cannot write the key pair into ${dir}: ${(e as Error).message}`);
  } finally {
    for (const t of temps) await unlink(t).catch(() => undefined);
  }
}

export async function runKeysGenerate(opts: KeysGenerateOptions, io: Io): Promise<number> {
  const dir = resolve(io.cwd, opts.out);
  const k = generateSigningKey(opts.seedHex);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new OkitError('IO_ERROR', `cannot create ${dir}: ${(e as Error).message}`);
  }
  await writePair(dir, [
    { name: KEY, text: privatePem(k), mode: 0o600 },
    { name: PUB, text: publicPem(k.publicKey), mode: 0o644 },
  ]);
  if (opts.seedHex) io.err('okit: INSECURE: this key is derived from a seed given on the command line; use it for tests only');
  io.out(`key id ${k.keyId}`);
  io.out(`private key ${resolve(dir, KEY)} (mode 0600), public key ${resolve(dir, PUB)}`);
  return EXIT.OK;
}

export function register(program: Command, io: Io): void {
  const keys = program.command('keys').description('manage Ed25519 bundle signing keys');
  keys
    .command('generate')
    .description('write okit-signing.key (PKCS#8 PEM, 0600) and okit-signing.pub (SPKI PEM) and print the key id')
    .requiredOption('--out <dir>', 'directory to write the key pair into')
    .option('--seed-hex <hex>', 'INSECURE: derive the key from this 32-byte seed (tests and golden samples only)')
    .action(action(io, (o: KeysGenerateOptions) => runKeysGenerate(o, io)));
}
