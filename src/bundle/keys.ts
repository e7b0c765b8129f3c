/**
 * Ed25519 signing keys: PKCS#8 PEM private key, SPKI PEM public key, key id = hex sha256 of
 * the SPKI DER. Signing uses @noble/ed25519; verification uses node:crypto (OpenSSL), which is
 * what an auditor's openssl does too, and is fast enough to verify every byte-flipped bundle.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { OkitError } from '../errors.js';
import { sha256Hex } from '../util/hash.js';

ed.hashes.sha512 = (m: Uint8Array) => new Uint8Array(createHash('sha512').update(m).digest());

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface SigningKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
  keyId: string;
}

/** Made only by parsePublicKey, which refuses small-order and non-canonical keys. */
export interface PublicKey {
  publicKey: Uint8Array;
  keyId: string;
  /** node:crypto key object for verification. */
  object: KeyObject;
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function unpem(text: string, label: string, what: string): Buffer {
  const m = new RegExp(`^-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+?)\\r?\\n?-----END ${label}-----\\s*$`).exec(text.trim() + '\n');
  if (!m) throw new OkitError('KEY_INVALID', `${what}: not a PEM ${label}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export function spkiDer(publicKey: Uint8Array): Buffer {
  return Buffer.concat([SPKI_PREFIX, publicKey]);
}

export function keyIdOf(publicKey: Uint8Array): string {
  return sha256Hex(spkiDer(publicKey));
}

export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new OkitError('KEY_INVALID', 'an Ed25519 seed is 32 bytes');
  const publicKey = ed.getPublicKey(seed);
  // Cannot happen for a hashed, clamped seed; checked so that no path signs under a key verify refuses.
  const problem = publicKeyProblem(publicKey);
  if (problem) throw new OkitError('KEY_INVALID', `the key derived from this seed is refused: ${problem}`);
  return { seed, publicKey, keyId: keyIdOf(publicKey) };
}

export function generateSigningKey(seedHex?: string): SigningKey {
  if (seedHex !== undefined) {
    if (!/^[0-9a-f]{64}$/i.test(seedHex)) throw new OkitError('INVALID_INPUT', '--seed-hex must be 64 hex digits');
    return signingKeyFromSeed(Buffer.from(seedHex, 'hex'));
  }
  return signingKeyFromSeed(ed.utils.randomSecretKey());
}

export function privatePem(k: SigningKey): string {
  return pem('PRIVATE KEY', Buffer.concat([PKCS8_PREFIX, k.seed]));
}

export function publicPem(publicKey: Uint8Array): string {
  return pem('PUBLIC KEY', spkiDer(publicKey));
}

export function parsePrivateKey(text: string, what = 'private key'): SigningKey {
  const der = unpem(text, 'PRIVATE KEY', what);
  if (der.length !== 48 || !der.subarray(0, 16).equals(PKCS8_PREFIX)) throw new OkitError('KEY_INVALID', `${what}: not an Ed25519 PKCS#8 key`);
  return signingKeyFromSeed(new Uint8Array(der.subarray(16)));
}

/**
 * Why a raw 32-byte Ed25519 public key is unusable, or null. Refused: encodings that are not a
 * point, non-canonical encodings (y >= p, or x = 0 with the sign bit set), and small-order
 * points ([8]A = identity: the 8 points of order 1, 2, 4 and 8). Under a small-order key a
 * trivial signature (R = identity, S = 0) verifies for every message with OpenSSL's check.
 */
export function publicKeyProblem(publicKey: Uint8Array): string | null {
  if (publicKey.length !== 32) return 'an Ed25519 public key is 32 bytes';
  let point: ed.Point;
  try {
    point = ed.Point.fromBytes(publicKey, false);
  } catch {
    return 'not a valid Ed25519 point';
  }
  if (!Buffer.from(point.toBytes()).equals(Buffer.from(publicKey))) return 'not the canonical encoding of its point';
  if (point.isSmallOrder()) return 'a small-order point ([8]A is the identity): any signature of the form R = identity, S = 0 would verify';
  return null;
}

export function parsePublicKey(text: string, what = 'public key'): PublicKey {
  const der = unpem(text, 'PUBLIC KEY', what);
  if (der.length !== 44 || !der.subarray(0, 12).equals(SPKI_PREFIX)) throw new OkitError('KEY_INVALID', `${what}: not an Ed25519 SPKI public key`);
  const publicKey = new Uint8Array(der.subarray(12));
  const problem = publicKeyProblem(publicKey);
  if (problem) throw new OkitError('KEY_INVALID', `${what}: refused: ${problem}`);
  let object: KeyObject;
  try {
    object = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    throw new OkitError('KEY_INVALID', `${what}: not a valid Ed25519 point`);
  }
  return { publicKey, keyId: keyIdOf(publicKey), object };
}

export function sign(k: SigningKey, message: Uint8Array): Buffer {
  return Buffer.from(ed.sign(message, k.seed));
}

export function verifySignature(k: PublicKey, message: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  try {
    return cryptoVerify(null, message, k.object, sig);
  } catch {
    return false;
  }
}
