import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allTransitions, EVENTS, isAllowed, JOB_STATES, TERMINAL_STATES, TRANSITIONS } from '../../src/ledger/states.js';
import { freshDb, type TestDb } from '../helpers/db.js';

const HASH = 'a'.repeat(64);
const JOB = '00000000-0000-4000-8000-000000000001';

describe('state machine: code and SQL CHECK agree', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await freshDb();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('leaves a finished state only by an operator retry (never succeeded), and reaches every state', () => {
    for (const [event, from, to] of allTransitions()) if (from && TERMINAL_STATES.has(from)) expect([event, to], `${event} from ${from}`).toEqual(['retried', 'queued']);
    expect(isAllowed('retried', 'succeeded', 'queued')).toBe(false);
    expect(isAllowed('prioritized', 'running', 'running')).toBe(false);
    const reached = new Set(allTransitions().map(([, , to]) => to));
    for (const s of JOB_STATES) expect(reached.has(s), s).toBe(true);
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...EVENTS].sort());
    expect(isAllowed('claimed', 'queued', 'running')).toBe(true);
    expect(isAllowed('claimed', 'running', 'running')).toBe(false);
  });

  it('the Mermaid diagram in docs/ledger.md is the one in states.ts, and draws every transition', () => {
    const fromCode = fs.readFileSync(new URL('../../src/ledger/states.ts', import.meta.url), 'utf8');
    const fromDocs = fs.readFileSync(new URL('../../docs/ledger.md', import.meta.url), 'utf8');
    const code = /```mermaid\n([\s\S]*?)```/.exec(fromCode)![1]!.split('\n').map((l) => l.replace(/^\s*\*\s?/, '').trim()).filter(Boolean);
    const docs = /```mermaid\n([\s\S]*?)```/.exec(fromDocs)![1]!.split('\n').map((l) => l.trim()).filter(Boolean);
    expect(docs).toEqual(code);
    const edges = new Set<string>();
    for (const l of code) {
      const m = /^(\S+) --> (\S+): (.+)$/.exec(l);
      if (m) for (const e of m[3]!.split(' / ')) edges.add(`${e}|${m[1] === '[*]' ? '-' : m[1]}|${m[2]}`);
    }
    expect([...edges].sort()).toEqual(allTransitions().map(([e, f, t]) => `${e}|${f ?? '-'}|${t}`).sort());
  });

  it('job_history_transition accepts exactly allTransitions()', async () => {
    const c = await db.admin();
    try {
      await c.query('BEGIN');
      // A job to hang rows on; the rows are only there to probe the CHECK, and everything is rolled back.
      await c.query(
        `INSERT INTO okit.jobs (id, tenant, type, payload, payload_sha256, max_attempts, state, not_before, created_at, updated_at, history_n, last_hash)
         VALUES ($1, 't', 'x', '{}', $2, 1, 'queued', now(), now(), now(), 1, $2)`,
        [JOB, HASH],
      );
      const allowed = new Set(allTransitions().map(([e, f, t]) => `${e}|${f ?? '-'}|${t}`));
      const froms: Array<string | null> = [null, ...JOB_STATES];
      let n = 0;
      let accepted = 0;
      for (const event of EVENTS)
        for (const from of froms)
          for (const to of JOB_STATES) {
            n++;
            await c.query(`SAVEPOINT s`);
            let ok = true;
            try {
              await c.query(
                `INSERT INTO okit.job_history (tenant, pos, job_id, n, at, event, from_state, to_state, data, prev_hash, hash)
                 VALUES ('t', $1::bigint, $2, $1::int, now(), $3, $4, $5, '{}', $6, $7)`,
                [n, JOB, event, from, to, n === 1 ? null : HASH, HASH],
              );
            } catch (e) {
              ok = false;
              expect((e as { constraint?: string }).constraint, (e as Error).message).toBe("job_history_transition");
            }
            await c.query(ok ? 'RELEASE SAVEPOINT s' : 'ROLLBACK TO SAVEPOINT s');
            expect(ok, `${event} ${from ?? '-'} -> ${to}`).toBe(allowed.has(`${event}|${from ?? '-'}|${to}`));
            if (ok) accepted++;
          }
      expect(accepted).toBe(allTransitions().length);
      expect(n).toBe(EVENTS.length * 8 * 7);
      expect(accepted).toBe(25);
    } finally {
      await c.query('ROLLBACK');
      await c.end();
    }
  });
});
