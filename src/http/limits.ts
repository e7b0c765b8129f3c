/**
 * What one client can hold of `okit serve`, and for how long. Every bound here is documented
 * in the README (Limits and timeouts); the defaults are what `okit serve` runs with.
 */
import fs from 'node:fs';
import net from 'node:net';

export interface ServerLimits {
  /** Complete request headers must arrive within this (slow-header clients get 408). */
  headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this (408). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way for this long is closed (above the longest long-poll and the SSE keep-alive period). */
  socketIdleTimeoutMs: number;
  /** Request line plus headers, bytes (431 above). */
  maxHeaderBytes: number;
  /** Open connections in all; past it a new connection is answered 503 TOO_MANY_CONNECTIONS and closed. */
  maxConnections: number;
  /** Open connections from one client address (IPv6: one /64); past it, 503 TOO_MANY_CONNECTIONS. */
  maxConnectionsPerIp: number;
}

/** File descriptors kept back from connections: the query pool, LISTEN, health probe, logs, Node itself. */
export const FD_RESERVE = 128;
/** Highest default connection cap whatever the fd limit (about 17 KiB of server memory each: bench/fanout). */
export const MAX_CONNECTIONS_CEILING = 20_000;

/** The process's soft open-files limit (RLIMIT_NOFILE), from /proc; 1024 where it cannot be read. */
export function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

export function defaultLimits(fdLimit = openFilesLimit()): ServerLimits {
  const maxConnections = Math.max(16, Math.min(MAX_CONNECTIONS_CEILING, fdLimit - FD_RESERVE));
  return {
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5_000,
    socketIdleTimeoutMs: 60_000,
    // 32 KiB: a multiplexed stream URL listing 500 job ids is 18.5 KB on its own.
    maxHeaderBytes: 32 * 1024,
    maxConnections,
    maxConnectionsPerIp: Math.min(1000, maxConnections),
  };
}

/** The key a per-address cap counts by: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64. */
export function addressKey(addr: string | undefined): string {
  if (!addr) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  if (mapped) return mapped[1]!;
  if (net.isIPv6(addr)) {
    const [head = '', tail = ''] = addr.split('%')[0]!.split('::');
    const h = head ? head.split(':') : [];
    const t = addr.includes('::') ? (tail ? tail.split(':') : []) : [];
    const full = [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
    return full.slice(0, 4).map((x) => x.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64';
  }
  return addr;
}

/** Open connections, in all and per address key. */
export class ConnectionCounter {
  private readonly byKey = new Map<string, number>();
  total = 0;
  readonly stats = { refused: 0 };

  constructor(private readonly limits: Pick<ServerLimits, 'maxConnections' | 'maxConnectionsPerIp'>) {}

  /** Counts a new connection in, or says why it is refused (nothing counted then). */
  admit(key: string): 'ok' | 'total' | 'address' {
    const n = this.byKey.get(key) ?? 0;
    if (this.total >= this.limits.maxConnections) return 'total';
    if (n >= this.limits.maxConnectionsPerIp) return 'address';
    this.byKey.set(key, n + 1);
    this.total++;
    return 'ok';
  }

  release(key: string): void {
    const n = this.byKey.get(key) ?? 0;
    if (n <= 1) this.byKey.delete(key);
    else this.byKey.set(key, n - 1);
    this.total--;
  }

  of(key: string): number {
    return this.byKey.get(key) ?? 0;
  }
}
