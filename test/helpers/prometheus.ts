/**
 * Debian's `prometheus` package (the server and promtool) for the rule and scrape tests.
 * Not installed is a failure that says how to install it, never a skip: `.ci/run` installs it
 * with apt-get, and `apt-get install prometheus` does locally.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './cli.js';

export const RULES_DIR = path.join(ROOT, 'docs/prometheus');
export const RULES = path.join(RULES_DIR, 'okit-rules.yml');
export const RULE_TESTS = path.join(RULES_DIR, 'okit-rules.test.yml');

/** The path of `bin` (promtool, prometheus), or an error telling how to get it. */
export function requireBinary(bin: 'promtool' | 'prometheus'): string {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const found = r.status === 0 ? r.stdout.trim() : '';
  if (!found)
    throw new Error(
      `${bin} is not installed. These tests need Debian's prometheus package (it brings prometheus and promtool): ` +
        `run \`apt-get install prometheus\` (as root; .ci/run does this), then npm test again.`,
    );
  return found;
}
