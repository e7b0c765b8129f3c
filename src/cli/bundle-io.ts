/** File helpers shared by the bundle commands: keys and bundles read with IO_ERROR on failure. */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parsePrivateKey, parsePublicKey, type PublicKey, type SigningKey } from '../bundle/keys.js';
import { OkitError } from '../errors.js';
import type { Io } from './io.js';

export async function readText(io: Io, file: string, what: string): Promise<string> {
  try {
    return await readFile(resolve(io.cwd, file), 'utf8');
  } catch (e) {
    throw new OkitError('IO_ERROR', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
}

export async function loadSigningKey(io: Io, file: string): Promise<SigningKey> {
  return parsePrivateKey(await readText(io, file, 'private key'), file);
}

export async function loadPublicKeys(io: Io, files: string[] | undefined): Promise<Array<{ key: PublicKey; label: string }>> {
  if (!files?.length) throw new OkitError('INVALID_INPUT', 'at least one --pubkey FILE is required');
  const out = [];
  for (const f of files) out.push({ key: parsePublicKey(await readText(io, f, 'public key'), f), label: f });
  return out;
}

/** A readable regular file, as an absolute path. */
export async function bundlePath(io: Io, file: string): Promise<string> {
  const p = resolve(io.cwd, file);
  try {
    const s = await stat(p);
    if (!s.isFile()) throw new Error('not a regular file');
  } catch (e) {
    throw new OkitError('IO_ERROR', `cannot read bundle ${file}: ${(e as Error).message}`);
  }
  return p;
}

export const collect = (v: string, prev: string[] = []) => [...prev, v];
