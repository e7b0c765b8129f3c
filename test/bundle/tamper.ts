/** Test helpers: split a bundle into its bodies and re-pack it, re-signed with a given key. */
import { createHash } from 'node:crypto';
import { dataFilesOf, ENTRIES, type DataFile, type Manifest } from '../../src/bundle/format.js';
import { sign, type SigningKey } from '../../src/bundle/keys.js';
import { renderManifest, renderSums } from '../../src/bundle/manifest.js';
import { BLOCK, END_BYTES, padding, tarHeader } from '../../src/bundle/tar.js';

export function entries(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  // Entries by their header names, up to the end blocks (v3 has eight, v1 and v2 seven).
  while (off + BLOCK <= buf.length && !buf.subarray(off, off + BLOCK).every((b) => b === 0) && out.size < ENTRIES.length) {
    const name = buf.toString('latin1', off, off + 100).replace(/\0.*$/s, '');
    const size = parseInt(buf.toString('latin1', off + 124, off + 135), 8);
    out.set(name, buf.subarray(off + BLOCK, off + BLOCK + size));
    off += BLOCK + size + padding(size).length;
  }
  return out;
}

export function rawTar(files: Array<{ name: string; body: Buffer; header?: Buffer }>, mtime: number, tail = Buffer.alloc(END_BYTES)): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) parts.push(f.header ?? tarHeader(f.name, f.body.length, mtime), f.body, padding(f.body.length));
  parts.push(tail);
  return Buffer.concat(parts);
}

export function lines(b: Buffer): string[] {
  return b.toString('utf8').split('\n').slice(0, -1);
}

/** Rebuilds a bundle from (possibly edited) data files: manifest, sums and signature all recomputed. */
export function repack(buf: Buffer, key: SigningKey, edit: { data?: Partial<Record<DataFile, Buffer>>; manifest?: (m: Manifest) => void } = {}): Buffer {
  const e = entries(buf);
  const m = JSON.parse(e.get('manifest.json')!.toString('utf8')) as Manifest;
  // The bundle's own version fixes its data files (v3 has queues.jsonl, v1 and v2 do not).
  const names = dataFilesOf(m.version);
  const data = Object.fromEntries(names.map((f) => [f, edit.data?.[f] ?? e.get(f)!])) as Record<DataFile, Buffer>;
  const files = names.map((f) => ({ name: f, bytes: data[f].length, lines: lines(data[f]).length, sha256: createHash('sha256').update(data[f]).digest('hex') }));
  const sums = renderSums(files);
  m.files = [{ name: 'SHA256SUMS', bytes: sums.length, lines: files.length, sha256: createHash('sha256').update(sums).digest('hex') }, ...files];
  m.counts = Object.fromEntries(files.map((f) => [f.name.replace('.jsonl', ''), f.lines])) as unknown as Manifest['counts'];
  m.key_id = key.keyId;
  edit.manifest?.(m);
  const mb = renderManifest(m);
  const mtime = parseInt(buf.toString('latin1', 136, 147), 8);
  return rawTar(
    [{ name: 'manifest.json', body: mb }, { name: 'manifest.sig', body: sign(key, mb) }, { name: 'SHA256SUMS', body: sums }, ...names.map((f) => ({ name: f, body: data[f] }))],
    mtime,
  );
}
