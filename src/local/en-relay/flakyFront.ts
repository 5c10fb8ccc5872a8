/**
 * A front of an Event Notifications destination that can be made unavailable: while `down()` says so it answers 503
 * (with `Retry-After` when `retryAfter()` gives one), otherwise it forwards the request (body and the given headers)
 * to `target` and relays the answer. Tests and benchmarks use it to make the `events` function briefly unavailable
 * behind the relay, over real HTTP.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FlakyFront {
  url: string;
  close(): Promise<void>;
}

export async function startFlakyFront(o: {
  target: string;
  /** Asked once per request: true answers 503. */
  down: () => boolean;
  retryAfter?: () => string | undefined;
  /** Request headers forwarded besides the content type (e.g. the events token). */
  forward: readonly string[];
}): Promise<FlakyFront> {
  const pick = (h: IncomingHttpHeaders) =>
    Object.fromEntries(o.forward.flatMap((k) => (typeof h[k] === 'string' ? [[k, h[k] as string]] : [])));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (o.down()) {
        const ra = o.retryAfter?.();
        res.writeHead(503, ra ? { 'retry-after': ra } : {});
        return res.end();
      }
      try {
        const r = await fetch(o.target, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...pick(req.headers) },
          body: Buffer.concat(chunks),
        });
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await r.arrayBuffer()));
      } catch {
        res.writeHead(502);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
