import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { generateSigningKey, privatePem, publicPem } from '../bundle/keys.js';
import { OkitError } from '../errors.js';
import { action, EXIT, type Io } from './io.js';

export interface KeysGenerateOptions {
  out: string;
  seedHex?: string;
}

export async function runKeysGenerate(opts: KeysGenerateOptions, io: Io): Promise<number> {
  const dir = resolve(io.cwd, opts.out);
  const k = generateSigningKey(opts.seedHex);
  await mkdir(dir, { recursive: true });
  const write = async (name: string, text: string, mode: number) => {
    try {
      // 'wx': never overwrite a key.
      await writeFile(resolve(dir, name), text, { mode, flag: 'wx' });
    } catch (e) {
      throw new OkitError('IO_ERROR', `cannot write ${resolve(dir, name)}: ${(e as Error).message}`);
    }
  };
  await write('okit-signing.key', privatePem(k), 0o600);
  await write('okit-signing.pub', publicPem(k.publicKey), 0o644);
  if (opts.seedHex) io.err('okit: INSECURE: this key is derived from a seed given on the command line; use it for tests only');
  io.out(`key id ${k.keyId}`);
  io.out(`private key ${resolve(dir, 'okit-signing.key')} (mode 0600), public key ${resolve(dir, 'okit-signing.pub')}`);
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
