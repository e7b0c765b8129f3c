/**
 * docs/prometheus/okit-rules.yml, checked by the real promtool: `check rules`, the unit tests
 * (`test rules`), a firing and a quiet case for every alert, and every metric and label the
 * rules name exists in what okit exposes.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OkitMetrics } from '../../src/metrics/metrics.js';
import { requireBinary, RULE_TESTS, RULES, RULES_DIR } from '../helpers/prometheus.js';

const rules = fs.readFileSync(RULES, 'utf8');
const tests = fs.readFileSync(RULE_TESTS, 'utf8');

describe('Prometheus rules (promtool)', () => {
  it('promtool check rules: valid', () => {
    const r = spawnSync(requireBinary('promtool'), ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const n = (rules.match(/^\s+- (record|alert): /gm) ?? []).length;
    expect(r.stdout).toContain(`SUCCESS: ${n} rules found`);
  });

  it('promtool test rules: every unit test passes', () => {
    const r = spawnSync(requireBinary('promtool'), ['test', 'rules', 'okit-rules.test.yml'], { cwd: RULES_DIR, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS/);
  });

  it('every alert has a unit test where it fires and one where it does not', () => {
    const alerts = [...rules.matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1]!);
    expect(alerts).toEqual(expect.arrayContaining(['TtfsSloBreachP95', 'TtfsHighErrorRate', 'OkitListenDown', 'OkitQueueGrowingNoClaims', 'OkitHostThrottled', 'OkitDeadLettersRising']));
    for (const a of alerts) {
      const cases = [...tests.matchAll(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:(.*)`, 'g'))].map((m) => m[1]!.trim());
      expect(cases, a).toContain('[]');
      expect(cases.filter((c) => c === ''), `${a} fires somewhere`).not.toHaveLength(0);
    }
  });

  it('every metric the rules use exists, with the labels the rules select on', () => {
    const m = new OkitMetrics({ defaultMetrics: false });
    const exprs = [...rules.matchAll(/^\s+expr: (.*)$/gm)].map((x) => x[1]!);
    const used = new Set<string>();
    for (const e of exprs)
      for (const [, name, sel] of e.matchAll(/\b((?:ttfs|okit)_[a-z_]+)(\{[^}]*\})?/g)) {
        const base = name!.replace(/_(bucket|count|sum)$/, '');
        const metric = m.registry.getSingleMetric(base) ?? m.registry.getSingleMetric(name!);
        expect(metric, `${name} (in: ${e})`).toBeDefined();
        used.add(base);
        const labels = new Set([...((metric as unknown as { labelNames: string[] }).labelNames ?? []), 'le', 'instance', 'job']);
        for (const [, k] of (sel ?? '').matchAll(/([a-z_]+)\s*(=~|!=|!~|=)/g)) expect(labels.has(k!), `${name}{${k}}`).toBe(true);
      }
    for (const e of exprs)
      for (const [, clause] of e.matchAll(/\b(?:by|on|without) \(([^)]*)\)/g))
        for (const l of clause!.split(',').map((s) => s.trim()))
          expect(['le', 'surface', 'type', 'tenant_id', 'host', 'instance', 'job', 'error_code', 'outcome', 'state'], l).toContain(l);
    expect(used.size).toBeGreaterThanOrEqual(9);
  });
});
