/**
 * Freezing a test's own Postgres the way a stalled disk, a paused VM or a black-holed network
 * looks from outside: every process of the cluster SIGSTOPped, its sockets still open. Only
 * for a cluster the test started itself (never the shared one); always thaw in `finally`.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The postmaster (from postmaster.pid) and every process it forked. */
export function clusterPids(dataDir: string): number[] {
  const postmaster = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const kids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may hold spaces.
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) kids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return [postmaster, ...kids];
}

export function freeze(pids: number[]): void {
  for (const p of pids) process.kill(p, 'SIGSTOP'); // the postmaster first: it forks nothing more
}

export function thaw(pids: number[]): void {
  for (const p of [...pids].reverse())
    try {
      process.kill(p, 'SIGCONT');
    } catch {
      /* already gone */
    }
}
