/**
 * A Postgres server from the machine's own packages (Debian's postgresql-15: `pg_config
 * --bindir`, or OKIT_PG_BINDIR), for tests that need what the embedded one is not given:
 * a primary and a streaming standby. As root, every server runs as the `postgres` user
 * (Postgres refuses root). .ci/run installs the package; the README says how to run locally.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export function debianBindir(): string {
  const tried: string[] = [];
  const candidates = [process.env.OKIT_PG_BINDIR];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    /* no pg_config */
  }
  candidates.push('/usr/lib/postgresql/15/bin');
  for (const c of candidates) {
    if (!c) continue;
    tried.push(c);
    if (fs.existsSync(path.join(c, 'postgres')) && fs.existsSync(path.join(c, 'pg_basebackup'))) return c;
  }
  throw new Error(`no Postgres server binaries (tried ${tried.join(', ')}): apt-get install postgresql-15, or set OKIT_PG_BINDIR`);
}

function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  };
}

export class PgServer {
  private readonly who = runAs();
  readonly logFile: string;
  constructor(
    readonly bindir: string,
    readonly dataDir: string,
    readonly port: number,
    readonly password: string,
  ) {
    this.logFile = `${dataDir}.log`;
  }

  url(db = 'postgres'): string {
    return `postgres://okit:${this.password}@127.0.0.1:${this.port}/${db}`;
  }

  /** Runs one of the server's programs as the server's user; rejects on a non-zero exit. */
  run(cmd: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(path.join(this.bindir, cmd), args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C', PGPASSWORD: this.password },
        cwd: '/',
        ...(this.who ?? {}),
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out}`))));
    });
  }

  /** A directory the server's user owns (mode 0700 for a data directory). */
  own(dir: string, mode = 0o700): void {
    fs.mkdirSync(dir, { recursive: true, mode });
    fs.chmodSync(dir, mode);
    if (this.who) fs.chownSync(dir, this.who.uid, this.who.gid);
  }

  async initdb(): Promise<void> {
    this.own(this.dataDir);
    const pw = `${this.dataDir}.pw`;
    fs.writeFileSync(pw, this.password + '\n', { mode: 0o600 });
    if (this.who) fs.chownSync(pw, this.who.uid, this.who.gid);
    try {
      await this.run('initdb', ['-D', this.dataDir, '-U', 'okit', `--pwfile=${pw}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-instructions', '--no-sync']);
    } finally {
      fs.rmSync(pw, { force: true });
    }
  }

  /** A streaming copy of `primary` (pg_basebackup -R), not started. */
  async baseBackupOf(primary: PgServer, applicationName: string): Promise<void> {
    this.own(path.dirname(this.dataDir), 0o755);
    await this.run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'okit', '-D', this.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    // -R writes standby.signal and a primary_conninfo; the last setting wins: name ourselves.
    fs.appendFileSync(
      path.join(this.dataDir, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=okit password=${this.password} application_name=${applicationName}'\n`,
    );
  }

  async start(): Promise<void> {
    const log = this.logFile;
    fs.writeFileSync(log, '');
    if (this.who) fs.chownSync(log, this.who.uid, this.who.gid);
    await this.run('pg_ctl', ['start', '-D', this.dataDir, '-l', log, '-w', '-t', '60', '-o', `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`]);
  }

  /** `immediate` is a crash as far as clients and WAL are concerned. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.run('pg_ctl', ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '60']);
  }

  async promote(): Promise<void> {
    await this.run('pg_ctl', ['promote', '-D', this.dataDir, '-w', '-t', '60']);
  }

  /** Stops it if it runs; never throws. */
  async kill(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
  }
}
