/** The FirstSignalCard's load state machine: every arrow of the design, and nothing else. */
import { describe, expect, it } from 'vitest';
import { next, onSignal, type LoadEvent, type LoadState } from '../../src/console/machine.js';

const STATES: LoadState[] = ['idle', 'loading', 'streaming', 'done', 'error'];
const EVENTS: LoadEvent[] = [{ type: 'load' }, { type: 'signal', terminal: false }, { type: 'signal', terminal: true }, { type: 'fail' }];
const label = (e: LoadEvent) => (e.type === 'signal' ? `signal${e.terminal ? '(terminal)' : ''}` : e.type);

describe('load state machine', () => {
  it('has exactly the arrows idle → loading → streaming | error, streaming → done | error, error → loading (and done → loading on a reload)', () => {
    const arrows: string[] = [];
    for (const s of STATES)
      for (const e of EVENTS) {
        const t = next(s, e);
        if (t !== s) arrows.push(`${s} -${label(e)}-> ${t}`);
      }
    expect(arrows.sort()).toEqual(
      [
        'idle -load-> loading',
        'loading -signal-> streaming',
        'loading -signal(terminal)-> streaming',
        'loading -fail-> error',
        'streaming -signal(terminal)-> done',
        'streaming -fail-> error',
        'error -load-> loading',
        'done -load-> loading',
      ].sort(),
    );
  });
  it('a terminal first signal is shown and settles: loading → done through streaming', () => {
    expect(onSignal('loading', true)).toBe('done');
    expect(onSignal('loading', false)).toBe('streaming');
    expect(onSignal('streaming', false)).toBe('streaming');
    expect(onSignal('streaming', true)).toBe('done');
    expect(onSignal('idle', false)).toBe('idle');
  });
  it('the live job of the issue: queued → started → phase → succeeded', () => {
    let s: LoadState = next('idle', { type: 'load' });
    for (const kind of ['queued', 'started', 'phase', 'phase']) s = onSignal(s, false);
    expect(s).toBe('streaming');
    s = onSignal(s, true);
    expect(s).toBe('done');
    // A stream error while streaming, then the retry after it.
    expect(next(next('streaming', { type: 'fail' }), { type: 'load' })).toBe('loading');
  });
});

describe('next-action links', () => {
  it("issue 14's server paths open the page's own routes; anything else stays inside the page", async () => {
    const { pageHref } = await import('../../src/console/api.js');
    const id = '0b79bcea-b7ec-4f1e-bd48-65ec90ddc021';
    expect(pageHref(`/jobs/${id}`)).toBe(`#/jobs/${id}`);
    expect(pageHref(`/runs/${id}`)).toBe(`#/runs/${id}`);
    expect(pageHref(`#/jobs/${id}`)).toBe(`#/jobs/${id}`);
    // Never a link off the console (javascript:, another host, a protocol-relative URL).
    for (const h of ['javascript:alert(1)', 'https://evil.example/', '//evil.example/jobs/x', `/jobs/${id}/../../x`]) expect(pageHref(h)).toBe('#/jobs');
  });
});
