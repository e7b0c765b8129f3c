/** The pure parts of serve's limits: default caps from the fd limit, address keys, the log limiter, target parsing. */
import { describe, expect, it } from 'vitest';
import { addressKey, ConnectionCounter, defaultLimits, FD_RESERVE, MAX_CONNECTIONS_CEILING } from '../../src/http/limits.js';
import { oneLine, RateLimitedLog } from '../../src/http/log.js';
import { parseTarget, Router } from '../../src/http/router.js';
import { isOkitError } from '../../src/errors.js';

describe('connection limits', () => {
  it('the default cap leaves fds for the pool and LISTEN, and stays under the ceiling', () => {
    expect(defaultLimits(1024).maxConnections).toBe(1024 - FD_RESERVE);
    expect(defaultLimits(1024).maxConnectionsPerIp).toBe(1000 > 1024 - FD_RESERVE ? 1024 - FD_RESERVE : 1000);
    expect(defaultLimits(1_048_576).maxConnections).toBe(MAX_CONNECTIONS_CEILING);
    expect(defaultLimits(1_048_576).maxConnectionsPerIp).toBe(1000);
    expect(defaultLimits(100).maxConnections).toBe(16);
    const d = defaultLimits();
    expect(d).toMatchObject({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, socketIdleTimeoutMs: 60_000, maxHeaderBytes: 32_768 });
    // The idle bound must outlast the longest long-poll (30 s + 1/16) and the SSE keep-alive (15 s).
    expect(d.socketIdleTimeoutMs).toBeGreaterThan(30_000 * (1 + 1 / 16) + 1000);
  });

  it('counts IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by /64', () => {
    expect(addressKey('10.0.0.7')).toBe('10.0.0.7');
    expect(addressKey('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:0:0:0:1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(undefined)).toBe('?');
  });

  it('admits up to each cap and refuses past it, counting nothing for a refusal', () => {
    const c = new ConnectionCounter({ maxConnections: 3, maxConnectionsPerIp: 2 });
    expect([c.admit('a'), c.admit('a'), c.admit('a')]).toEqual(['ok', 'ok', 'address']);
    expect(c.admit('b')).toBe('ok');
    expect(c.admit('c')).toBe('total');
    c.release('a');
    expect(c.admit('c')).toBe('ok');
    expect(c.total).toBe(3);
  });
});

describe('client-error log lines', () => {
  it('at most N per window, one line each, the rest counted and reported once', () => {
    let now = 0;
    const out: string[] = [];
    const log = new RateLimitedLog((l) => out.push(l), 3, 10_000, () => now);
    for (let i = 0; i < 10; i++) log.line(`bad request ${i}\n    at evil (x.js:1:1)\u001b]0;pwned\u0007`);
    expect(out).toHaveLength(3);
    expect(out.every((l) => !l.includes('\n') && !l.includes('\u001b') && !l.includes('\u0007'))).toBe(true);
    now = 10_000;
    log.line('next window');
    expect(out.slice(3)).toEqual(['7 similar line(s) suppressed (at most 3 per 10 s)', 'next window']);
    expect(oneLine('x'.repeat(1000)).length).toBe(301);
  });
});

describe('request targets', () => {
  const bad = (t: string) => {
    try {
      parseTarget(t);
      return null;
    } catch (e) {
      return isOkitError(e) ? e.code : 'not an OkitError';
    }
  };
  it('parses the path as a path', () => {
    expect(parseTarget('//x/healthz?wait=2')).toMatchObject({ pathname: '//x/healthz' });
    expect(parseTarget('//x/healthz?wait=2').query.get('wait')).toBe('2');
    expect(parseTarget('/\\/').pathname).toBe('/\\/');
    expect(parseTarget('http://h/a/b?c=1').pathname).toBe('/a/b');
    expect(bad('*')).toBe('BAD_REQUEST');
    expect(bad('http://[/')).toBe('BAD_REQUEST');
    expect(bad('x/healthz')).toBe('BAD_REQUEST');
  });
  it('routes only exact segments', async () => {
    const r = new Router().add('GET', '/healthz', async () => undefined).add('GET', '/jobs/:id', async () => undefined);
    const code = (p: string) => {
      try {
        r.match('GET', p);
        return 'ok';
      } catch (e) {
        return isOkitError(e) ? e.code : 'bug';
      }
    };
    expect(['/healthz', '//healthz', '/healthz/', '//x/healthz', '/jobs/1', '/jobs/', '/jobs//', '/jobs/%zz'].map(code)).toEqual([
      'ok', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'ok', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND',
    ]);
  });
});
