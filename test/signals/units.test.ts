import { describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/signals/cache.js';
import { matchesEtag, parseWait } from '../../src/signals/handlers.js';
import { parsePayload } from '../../src/signals/listener.js';
import { notifyPayload } from '../../src/ledger/writer.js';
import { Waiters } from '../../src/signals/waiters.js';

describe('NOTIFY payloads', () => {
  it('parses ids, the tenant wildcard, and ignores probes and junk', () => {
    expect(parsePayload('acme a b')).toEqual({ tenant: 'acme', jobIds: ['a', 'b'] });
    expect(parsePayload('acme *')).toEqual({ tenant: 'acme', jobIds: '*' });
    expect(parsePayload('!probe 12ab')).toBeNull();
    expect(parsePayload('acme')).toBeNull();
    expect(parsePayload(undefined)).toBeNull();
  });

  it('carries claim hints: jobs claimable now and the earliest later moment, per type', () => {
    const p = parsePayload('acme a b +scan=2 +x:y.z=1 @mirror=1733313600123456 @mirror=1733313600000001');
    expect(p?.jobIds).toEqual(['a', 'b']);
    expect(p?.claims?.ready).toEqual(new Map([['scan', 2], ['x:y.z', 1]]));
    expect(p?.claims?.due).toEqual(new Map([['mirror', 1733313600000001n]]));
    expect(parsePayload('acme * +*')).toEqual({ tenant: 'acme', jobIds: '*', claims: { ready: '*', due: new Map() } });
    expect(parsePayload('acme +scan=1')).toEqual({ tenant: 'acme', jobIds: [], claims: { ready: new Map([['scan', 1]]), due: new Map() } });
    // Malformed hints are ignored, never taken for job ids.
    expect(parsePayload('acme +scan @=5 +=1 +scan=x')).toEqual({ tenant: 'acme', jobIds: [] });
  });

  it('a payload stays under 8000 bytes: ids give way to "*" first, then hints to "+*"', () => {
    const id = '00000000-0000-4000-8000-000000000000';
    const hints = { ready: new Map([['scan', 3]]), due: new Map([['mirror', 5n]]) };
    expect(notifyPayload('acme', [id], hints)).toBe(`acme ${id} +scan=3 @mirror=5`);
    expect(notifyPayload('acme', [], { ready: new Map(), due: new Map() })).toBeNull();
    const many = Array.from({ length: 300 }, () => id);
    expect(notifyPayload('acme', many, hints)).toBe('acme * +scan=3 @mirror=5');
    const types = new Map(Array.from({ length: 100 }, (_, i) => [`type-${i}-${'t'.repeat(90)}`, 1]));
    expect(notifyPayload('acme', [id], { ready: types, due: new Map() })).toBe(`acme ${id} +*`);
    expect(parsePayload(notifyPayload('acme', many, hints))?.claims?.ready).toEqual(new Map([['scan', 3]]));
  });
});

describe('waiters', () => {
  it('wake only the job (or tenant) they wait for, once, and always end by their bound', async () => {
    const w = new Waiters();
    const a = w.arm('t1', 'j1');
    const b = w.arm('t1', 'j2');
    const c = w.arm('t2', 'j1');
    w.wakeJob('t1', 'j1');
    expect(await a.wait(5000)).toBe('woken'); // woken before wait() was even called: not lost
    expect(await b.wait(20)).toBe('timeout');
    w.wakeTenant('t2');
    expect(await c.wait(5000)).toBe('woken');
    expect(w.size).toBe(0);
    const d = w.arm('t3', 'j');
    const ac = new AbortController();
    const p = d.wait(5000, ac.signal);
    ac.abort();
    expect(await p).toBe('aborted');
    const e = w.arm('t4', 'j');
    setTimeout(() => w.wakeAll(), 10);
    expect(await e.wait(5000)).toBe('woken');
    expect(w.size).toBe(0);
  });
});

describe('snapshot cache', () => {
  it('expires after its TTL, refuses more than 1 s, and ignores a read that raced with an invalidation', () => {
    let now = 0;
    const c = new SnapshotCache<string>(1000, () => now);
    expect(() => new SnapshotCache(1001)).toThrow();
    c.set('t', 'j', 'v1', c.ticket('t', 'j'));
    expect(c.get('t', 'j')).toBe('v1');
    now = 1001;
    expect(c.get('t', 'j')).toBeUndefined();
    const ticket = c.ticket('t', 'j'); // a read starts
    c.invalidate('t', 'j'); // a NOTIFY arrives meanwhile
    c.set('t', 'j', 'old', ticket); // the read finishes with what it saw before the change
    expect(c.get('t', 'j')).toBeUndefined();
    c.set('t', 'j', 'v2', c.ticket('t', 'j'));
    const t2 = c.ticket('t', 'j');
    c.clear(); // reconnect drops everything, and outstanding reads too
    expect(c.get('t', 'j')).toBeUndefined();
    c.set('t', 'j', 'stale', t2);
    expect(c.get('t', 'j')).toBeUndefined();
  });

  it('stays bounded under invalidations alone (a server that mostly sees worker writes)', () => {
    const c = new SnapshotCache<string>(1000, () => 0);
    const ticket = c.ticket('t', 'watched');
    for (let i = 0; i < 25_000; i++) c.invalidate('t', `j${i}`);
    expect((c as unknown as { gens: Map<string, number> }).gens.size).toBeLessThan(10_000);
    // The reset makes outstanding tickets stale: a miss, never a stale value.
    c.set('t', 'watched', 'v', ticket);
    expect(c.get('t', 'watched')).toBeUndefined();
  });
});

describe('request parsing', () => {
  it('If-None-Match: exact, list, weak, star', () => {
    expect(matchesEtag('"1-ab"', '"1-ab"')).toBe(true);
    expect(matchesEtag('"0-x", W/"1-ab"', '"1-ab"')).toBe(true);
    expect(matchesEtag('*', '"1-ab"')).toBe(true);
    expect(matchesEtag('"1-ac"', '"1-ab"')).toBe(false);
    expect(matchesEtag(undefined, '"1-ab"')).toBe(false);
  });
  it('wait is 0..30 seconds', () => {
    expect(parseWait(new URLSearchParams(''))).toBe(0);
    expect(parseWait(new URLSearchParams('wait=2'))).toBe(2);
    expect(parseWait(new URLSearchParams('wait=0.5'))).toBe(0.5);
    for (const bad of ['31', '-1', 'abc', '1e3', 'Infinity']) expect(() => parseWait(new URLSearchParams('wait=' + bad))).toThrow(/wait/);
  });
});
