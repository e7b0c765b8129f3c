/** A server in a child process (serve-child.mjs), its stderr collected, its fds countable. */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from './cli.js';

export interface ChildServer {
  pid: number;
  baseUrl: string;
  port: number;
  /** Everything the server logged so far. */
  log(): string;
  /** Open file descriptors of the server process, from /proc. */
  fds(): number;
  stats(): Promise<{ connections: number; refused: number; waiters: number }>;
  stop(): Promise<void>;
}

export interface ChildProcessOptions {
  /** The server's open-files limit (soft and hard), set by prlimit(1) before node starts, as `ulimit -n` would. */
  nofile?: number;
}

export async function startChildServer(databaseUrl: string, options: Record<string, unknown> = {}, proc: ChildProcessOptions = {}): Promise<ChildServer> {
  const child = fork(path.join(ROOT, 'test/helpers/serve-child.mjs'), [], {
    env: { ...process.env, DATABASE_URL: databaseUrl, OKIT_TEST_SERVER: JSON.stringify(options) },
    // prlimit sets the limit and execs node in the same process (same pid, the IPC fd kept).
    ...(proc.nofile ? { execPath: 'prlimit', execArgv: [`--nofile=${proc.nofile}:${proc.nofile}`, process.execPath, ...process.execArgv] } : {}),
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  let next = 1;
  const baseUrl = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    child.on('message', (m: Record<string, unknown>) => {
      if (m.ready) resolve(m.baseUrl as string);
      else pending.get(m.id as number)?.(m);
    });
  });
  const ask = (cmd: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      child.send({ cmd, id });
    });
  return {
    pid: child.pid!,
    baseUrl,
    port: Number(new URL(baseUrl).port),
    log: () => stderr,
    fds: () => fs.readdirSync(`/proc/${child.pid}/fd`).length,
    stats: async () => (await ask('stats')) as unknown as { connections: number; refused: number; waiters: number },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      await Promise.race([ask('stop'), new Promise((r) => setTimeout(r, 10_000))]);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export interface RawReply {
  /** Status of the first response, or null if none came. */
  status: number | null;
  head: string;
  body: string;
  /** The server closed the connection (FIN or reset) before `waitMs`. */
  closed: boolean;
  ms: number;
  json: { error?: { code?: string; message?: string } } | null;
}

/**
 * Writes raw bytes (one chunk, or chunks with pauses in ms between them) and reads what comes
 * back until the server closes or `waitMs` pass; our side never sends FIN first.
 */
export function raw(port: number, chunks: string | Array<string | number>, opts: { waitMs?: number; localAddress?: string } = {}): Promise<RawReply> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const [head = '', ...rest] = data.split('\r\n\r\n');
      const body = rest.join('\r\n\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      let json: RawReply['json'] = null;
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
      resolve({ status: m ? Number(m[1]) : null, head, body, closed, ms: performance.now() - t0, json });
    };
    const timer = setTimeout(() => finish(false), opts.waitMs ?? 5000);
    s.on('data', (d) => (data += d));
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.on('connect', async () => {
      const list = typeof chunks === 'string' ? [chunks] : chunks;
      for (const c of list) {
        if (done) return;
        if (typeof c === 'number') await new Promise((r) => setTimeout(r, c));
        else s.write(c);
      }
    });
  });
}
