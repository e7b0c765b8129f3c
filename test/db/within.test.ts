/**
 * within(): a bound that gives way to an answer which arrived while the event loop was stalled
 * (a loaded machine: the soak saw 2 s stalls). Timers run before pending I/O when the loop
 * resumes; without the extra turn, an answer sitting in the socket would be reported late.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { within } from '../../src/db/errors.js';

describe('within', () => {
  it('resolves with the value, or undefined after the bound', async () => {
    expect(await within(Promise.resolve(7), 50)).toBe(7);
    expect(await within(new Promise(() => undefined), 20)).toBeUndefined();
    await expect(within(Promise.reject(new Error('x')), 50)).rejects.toThrow('x');
    expect(await within(Promise.resolve(1), Infinity)).toBe(1);
  });

  it('an answer that arrived during a stall beats the bound that expired during it', async () => {
    const srv = net.createServer((s) => s.end('answer'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      const answer = new Promise<string>((resolve) => sock.once('data', (d) => resolve(String(d))));
      const bounded = within(answer, 20);
      const t0 = performance.now();
      while (performance.now() - t0 < 200); // the loop stalls; the answer arrives meanwhile
      expect(await bounded).toBe('answer');
      sock.destroy();
    } finally {
      srv.close();
    }
  });
});
