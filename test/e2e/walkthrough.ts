/**
 * The README's operator's-day walkthrough, held to what the end-to-end test really ran: the
 * block after `<!-- walkthrough: test/e2e/operator-day.test.ts -->` must list exactly the
 * commands of the test's transcript, in order, each output line it shows must be a line that
 * command printed, and each `curl` must be a call the test's worker made.
 *
 * In the README: `$ [VAR=value ...] okit ...` is a command (shell quoting as in sh), the lines
 * after it its output until the next `$` or `#` line; `…` stands for any text; `$NAME` is a
 * placeholder for an id of the day. Output is compared with ids, timestamps, hex digests,
 * tokens, ages and runs of spaces normalized on both sides, so a reader sees real-looking values.
 */

export interface Step {
  /** The command as the operator types it: placeholders for ids and files. */
  args: string[];
  /** Environment shown before the command (`OKIT_TOKEN=$READ_TOKEN`), or none. */
  env: string[];
  stdout: string;
}

export interface Call {
  method: string;
  /** The path with the day's ids replaced by their placeholders. */
  path: string;
}

export const MARKER = '<!-- walkthrough: test/e2e/operator-day.test.ts -->';

/** sh-like words: single and double quotes, backslash escapes outside single quotes. */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unclosed ' in: ${line}`);
      cur += line.slice(i + 1, j);
      i = j;
      inWord = true;
    } else if (c === '"') {
      i++;
      for (; i < line.length && line[i] !== '"'; i++) cur += line[i] === '\\' && i + 1 < line.length ? line[++i] : line[i];
      if (i >= line.length) throw new Error(`unclosed " in: ${line}`);
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

export function normalize(line: string): string {
  return line
    .replace(/\$[A-Z][A-Z0-9_]*/g, '<id>')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>')
    .replace(/okit_([A-Za-z0-9_-]{43}|…)/g, '<token>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<ts>')
    .replace(/\b[0-9a-f]{64}\b/g, '<hex>')
    .replace(/\b\d+(ms|s|m|h|d)\b/g, '<age>')
    .replace(/\s+/g, ' ')
    .trim();
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A README output line as a pattern over a normalized printed line: `…` matches anything. */
function linePattern(readmeLine: string): RegExp {
  return new RegExp('^' + normalize(readmeLine).split('…').map((p) => escape(p.trim())).join('.*') + '$');
}

interface ReadmeCommand {
  env: string[];
  args: string[];
  out: string[];
  line: number;
}

export function parseWalkthrough(readme: string): { commands: ReadmeCommand[]; curls: Array<Call & { line: number }> } {
  const at = readme.indexOf(MARKER);
  if (at < 0) throw new Error(`README has no ${MARKER}`);
  const open = readme.indexOf('```console\n', at);
  const close = readme.indexOf('\n```', open + 1);
  if (open < 0 || close < 0) throw new Error('the walkthrough marker is not followed by a ```console block');
  const firstLine = readme.slice(0, open).split('\n').length + 1;
  const lines = readme.slice(open + '```console\n'.length, close).split('\n');
  const commands: ReadmeCommand[] = [];
  const curls: Array<Call & { line: number }> = [];
  let cur: ReadmeCommand | null = null;
  lines.forEach((text, i) => {
    const line = firstLine + i;
    if (text.startsWith('#') || text.trim() === '') {
      cur = null;
      return;
    }
    if (!text.startsWith('$ ')) {
      if (cur) cur.out.push(text);
      return;
    }
    cur = null;
    const words = shellWords(text.slice(2));
    const env: string[] = [];
    while (words.length && /^[A-Z_]+=/.test(words[0]!)) env.push(words.shift()!);
    if (words[0] === 'okit') {
      cur = { env, args: words.slice(1), out: [], line };
      commands.push(cur);
    } else if (words[0] === 'curl') {
      const x = words.indexOf('-X');
      const url = words.find((w) => w.startsWith('$OKIT_URL/'));
      if (!url) throw new Error(`README line ${line}: a curl without $OKIT_URL/…`);
      curls.push({ method: x >= 0 ? words[x + 1]! : 'GET', path: url.slice('$OKIT_URL'.length), line });
    }
    // Anything else (export, cat) is for the reader.
  });
  return { commands, curls };
}

/** Everything in the README's walkthrough that the transcript does not bear out. */
export function checkWalkthrough(readme: string, steps: readonly Step[], calls: readonly Call[]): string[] {
  const { commands, curls } = parseWalkthrough(readme);
  const problems: string[] = [];
  const show = (env: string[], args: string[]) => [...env, 'okit', ...args].join(' ');
  const want = steps.map((s) => show(s.env, s.args));
  const have = commands.map((c) => show(c.env, c.args));
  if (want.join('\n') !== have.join('\n'))
    problems.push(`the walkthrough's commands differ from the test's:\n--- test\n${want.join('\n')}\n--- README\n${have.join('\n')}`);
  commands.forEach((c, i) => {
    const step = steps[i];
    if (!step) return;
    const printed = step.stdout.split('\n').map(normalize);
    let from = 0;
    for (const o of c.out) {
      if (o.trim() === '…') continue;
      const re = linePattern(o);
      const k = printed.findIndex((p, j) => j >= from && re.test(p));
      if (k < 0) problems.push(`README line ${c.line} (okit ${c.args.join(' ')}): "${o}" is not what it printed (in order):\n${step.stdout}`);
      else from = k + 1;
    }
  });
  for (const c of curls)
    if (!calls.some((k) => k.method === c.method && k.path === c.path)) problems.push(`README line ${c.line}: curl -X ${c.method} ${c.path} is not a call the test made`);
  return problems;
}
