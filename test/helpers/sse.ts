/** A minimal SSE reader over fetch, for tests: events and comments in arrival order. */
export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
  retry?: string;
}

export interface SseConn {
  status: number;
  headers: Headers;
  /** The next event (comments included); null when the stream ended. */
  next(timeoutMs?: number): Promise<SseEvent | null>;
  /** The next event that is not a comment or a retry line. */
  nextEvent(timeoutMs?: number): Promise<SseEvent | null>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string>): Promise<SseConn> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const reader = res.body?.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let ended = false;
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  const queue: SseEvent[] = [];
  const parse = () => {
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev: SseEvent = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) ev.comment = line.slice(1).trim();
        else {
          const k = line.slice(0, line.indexOf(':'));
          const val = line.slice(line.indexOf(':') + 1).replace(/^ /, '');
          (ev as Record<string, string>)[k] = val;
        }
      }
      queue.push(ev);
    }
  };
  const next = async (timeoutMs = 10_000): Promise<SseEvent | null> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      if (ended || !reader) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no SSE event within ' + timeoutMs + ' ms');
      // One read at a time, kept across a timeout: a read dropped on timeout would take the
      // next chunk with it.
      pending ??= reader.read();
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([pending, new Promise<'t'>((res) => (timer = setTimeout(() => res('t'), left)))]);
      clearTimeout(timer);
      if (r === 't') continue;
      pending = undefined;
      if (r.done) ended = true;
      else buf += dec.decode(r.value, { stream: true });
      parse();
    }
    return queue.shift()!;
  };
  return {
    status: res.status,
    headers: res.headers,
    next,
    async nextEvent(timeoutMs) {
      for (;;) {
        const e = await next(timeoutMs);
        if (!e || e.event || e.data) return e;
      }
    },
    close: () => ac.abort(),
  };
}
