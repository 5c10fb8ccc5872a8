/**
 * An HTTP proxy in front of one emulator region that, once armed, creates a new import token for the instance just
 * before forwarding its next `rotate` — exactly what a concurrent secure import outside lockstep's lease does (one
 * import token per instance, last writer wins). Key Protect then rejects the rotate's nonce.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ClobberProxy {
  url: string;
  /** Clobber the token before the next rotate of this instance. */
  arm(instanceId: string): void;
  clobbered: number;
  close(): Promise<void>;
}

function forward(target: URL, method: string, path: string, headers: Record<string, string>, body: Buffer) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>(
    (resolve, reject) => {
      const req = request(
        {
          host: target.hostname,
          port: target.port,
          method,
          path,
          headers: { ...headers, host: target.host, 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    },
  );
}

export async function startClobberProxy(upstream: string): Promise<ClobberProxy> {
  const target = new URL(upstream);
  const armed = new Set<string>();
  const proxy: ClobberProxy = { url: '', clobbered: 0, arm: (i) => armed.add(i), close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === 'string' && k !== 'accept-encoding') headers[k] = v;
        const instance = headers['bluemix-instance'] ?? '';
        if (req.method === 'POST' && /\/actions\/rotate$/.test(req.url ?? '') && armed.delete(instance)) {
          const tokenBody = Buffer.from(JSON.stringify({ expiration: 600, maxAllowedRetrievals: 1 }));
          const h = { ...headers, 'content-type': 'application/json' };
          await forward(target, 'POST', '/api/v2/import_token', h, tokenBody);
          proxy.clobbered += 1;
        }
        const out = await forward(target, req.method ?? 'GET', req.url ?? '/', headers, Buffer.concat(chunks));
        const outHeaders: Record<string, string> = {};
        for (const [k, v] of Object.entries(out.headers))
          if (typeof v === 'string' && k !== 'content-length' && k !== 'transfer-encoding') outHeaders[k] = v;
        res.writeHead(out.status, outHeaders);
        res.end(out.body);
      } catch {
        res.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}
