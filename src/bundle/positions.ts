/**
 * Completeness of a window: the ledger positions used by history rows, throttle events and queue events
 * must be exactly [from_pos, to_pos], each once. Positions arrive per file in increasing
 * order, so each file's are kept as runs (one run when nothing is missing); the export and
 * the verifier make the same check with this one class.
 */
/** Positions as numbers while exact (the verifier's), or bigints. */
type P = number | bigint;
type Run = [P, P];

const next = (p: P): P => (typeof p === 'number' && p < Number.MAX_SAFE_INTEGER ? p + 1 : BigInt(p) + 1n);

export type PositionProblem = { code: 'POSITION_DUPLICATE' | 'POSITION_GAP'; message: string };

export class PositionCover {
  private readonly runs: Run[][] = [];

  /** A new source (a file) of increasing positions. */
  source(): (pos: P) => void {
    const rs: Run[] = [];
    this.runs.push(rs);
    return (p) => {
      const last = rs[rs.length - 1];
      // (`==`: a number and a bigint of the same value are the same position.)
      if (last && next(last[1]) == p) last[1] = p;
      else rs.push([p, p]);
    };
  }

  /** Every problem with covering [from, to] (to = from - 1 for an empty window). */
  problems(from: bigint, to: bigint): PositionProblem[] {
    const out: PositionProblem[] = [];
    const all = this.runs.flat().map(([a, b]): [bigint, bigint] => [BigInt(a), BigInt(b)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let next = from;
    for (const [a, b] of all) {
      if (a < next) out.push({ code: 'POSITION_DUPLICATE', message: `position ${a} is used more than once` });
      else if (a > next && next <= to) out.push({ code: 'POSITION_GAP', message: `positions ${next}..${a - 1n > to ? to : a - 1n} are used by no line` });
      if (b + 1n > next) next = b + 1n;
    }
    if (next <= to) out.push({ code: 'POSITION_GAP', message: `positions ${next}..${to} are used by no line` });
    return out;
  }
}
