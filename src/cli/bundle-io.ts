/** File helpers shared by the bundle commands: keys and bundles read with IO_ERROR on failure. */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parsePrivateKey, parsePublicKey, type PublicKey, type SigningKey } from '../bundle/keys.js';
import { OkitError } from '../errors.js';
import type { Io } from './io.js';

/** A PEM key is under 200 bytes; anything over this is not a key file. */
export const MAX_KEY_FILE_BYTES = 8 * 1024;

/**
 * Reads a key file: a regular file of at most MAX_KEY_FILE_BYTES. Opened non-blocking and
 * checked with fstat before a byte is read, so a FIFO, a device (/dev/zero) or a directory is
 * refused at once instead of hanging or filling memory.
 */
export async function readKeyFile(io: Io, file: string, what: string): Promise<string> {
  const p = resolve(io.cwd, file);
  let fh;
  try {
    fh = await open(p, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new OkitError('IO_ERROR', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new OkitError('IO_ERROR', `cannot read ${what} ${file}: not a regular file`);
    if (s.size > MAX_KEY_FILE_BYTES) throw new OkitError('KEY_INVALID', `${what} ${file} is ${s.size} bytes: a key file is at most ${MAX_KEY_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_KEY_FILE_BYTES) throw new OkitError('KEY_INVALID', `${what} ${file} is over ${MAX_KEY_FILE_BYTES} bytes: not a key file`);
    }
    return buf.toString('utf8', 0, n);
  } catch (e) {
    if (e instanceof OkitError) throw e;
    throw new OkitError('IO_ERROR', `cannot read ${what} ${file}: ${(e as Error).message}`);
  } finally {
    await fh.close();
  }
}

export async function loadSigningKey(io: Io, file: string): Promise<SigningKey> {
  return parsePrivateKey(await readKeyFile(io, file, 'private key'), file);
}

export async function loadPublicKeys(io: Io, files: string[] | undefined): Promise<Array<{ key: PublicKey; label: string }>> {
  if (!files?.length) throw new OkitError('INVALID_INPUT', 'at least one --pubkey FILE is required');
  const out = [];
  for (const f of files) out.push({ key: parsePublicKey(await readKeyFile(io, f, 'public key'), f), label: f });
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
