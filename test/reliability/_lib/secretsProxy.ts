/**
 * A pass-through HTTP proxy in front of one Key Protect emulator region that records the secrets crossing the wire,
 * so the secrets scan can look for them elsewhere: bearer tokens lockstep presents, import-token nonces Key Protect
 * hands out, and every `plaintext` (wrap requests, unwrap answers — canary DEKs and escrowed material coming back).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordingProxy {
  url: string;
  bearerTokens: Set<string>;
  nonces: Buffer[];
  plaintexts: Buffer[];
  close(): Promise<void>;
}

function collect(text: string, into: (field: string, value: string) => void): void {
  if (!text.startsWith('{')) return;
  try {
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (typeof x === 'string') into(k, x);
          else walk(x);
        }
      }
    };
    walk(JSON.parse(text));
  } catch {
    // not JSON
  }
}

export async function startRecordingProxy(upstream: string): Promise<RecordingProxy> {
  const target = new URL(upstream);
  const p: RecordingProxy = {
    url: '',
    bearerTokens: new Set(),
    nonces: [],
    plaintexts: [],
    close: async () => undefined,
  };
  const note = (field: string, value: string) => {
    if (field === 'nonce') p.nonces.push(Buffer.from(value, 'base64'));
    if (field === 'plaintext') p.plaintexts.push(Buffer.from(value, 'base64'));
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && k !== 'accept-encoding' && k !== 'host' && k !== 'connection') headers[k] = v;
      }
      const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? '');
      if (bearer) p.bearerTokens.add(bearer[1]!);
      collect(body.toString('utf8'), note);
      const up = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...headers, host: target.host, 'content-length': String(body.length) },
        },
        (upRes) => {
          const out: Buffer[] = [];
          upRes.on('data', (c: Buffer) => out.push(c));
          upRes.on('end', () => {
            const answer = Buffer.concat(out);
            collect(answer.toString('utf8'), note);
            const h = { ...upRes.headers };
            delete h['transfer-encoding'];
            delete h.connection;
            res.writeHead(upRes.statusCode ?? 502, { ...h, 'content-length': String(answer.length) });
            res.end(answer);
          });
        },
      );
      up.on('error', () => {
        // the region is down (fault injection): the client sees the connection fail too
        res.destroy();
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  p.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return p;
}
