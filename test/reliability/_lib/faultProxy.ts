/**
 * An HTTP proxy that decides per request what happens to it: forwarded, answered 503, its connection reset before
 * it reaches the upstream, or forwarded (and applied) and then reset — an ambiguous write. Put in front of the
 * embedded store it makes Cloudant briefly unavailable in the middle of a run ({@link storeOutage}); put in front of
 * a Key Protect region its hook can arm an emulator fault for exactly the request that is about to arrive.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxyAction = 'forward' | '503' | 'reset' | 'reset-after-forward';

export interface ProxiedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface FaultProxy {
  url: string;
  /** Requests per action taken. */
  stats: Record<ProxyAction, number>;
  /** Forwarded requests by the upstream's status. */
  statuses: Record<number, number>;
  close(): Promise<void>;
}

interface Upstream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function forward(target: URL, r: ProxiedRequest, body: Buffer): Promise<Upstream> {
  return new Promise<Upstream>((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        method: r.method,
        path: r.path,
        headers: { ...r.headers, host: target.host, 'content-length': String(body.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const HOP_BY_HOP = new Set(['accept-encoding', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

/**
 * Starts the proxy on 127.0.0.1 (random port) in front of `upstream`; `decide` is asked once per request, `observe`
 * sees the upstream's status of every forwarded request.
 */
export async function startFaultProxy(
  upstream: string,
  decide: (r: ProxiedRequest) => ProxyAction | Promise<ProxyAction>,
  observe?: (r: ProxiedRequest, status: number) => void,
): Promise<FaultProxy> {
  const target = new URL(upstream);
  const stats: FaultProxy['stats'] = { forward: 0, '503': 0, reset: 0, 'reset-after-forward': 0 };
  const statuses: FaultProxy['statuses'] = {};
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === 'string' && !HOP_BY_HOP.has(k)) headers[k] = v;
        const r: ProxiedRequest = {
          method: req.method ?? 'GET',
          path: req.url ?? '/',
          headers,
          body: Buffer.concat(chunks),
        };
        const action = await decide(r);
        stats[action] += 1;
        if (action === '503') {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'service_unavailable', reason: 'injected outage' }));
          return;
        }
        if (action === 'reset') {
          req.socket.destroy();
          return;
        }
        const out = await forward(target, r, r.body);
        statuses[out.status] = (statuses[out.status] ?? 0) + 1;
        observe?.(r, out.status);
        if (action === 'reset-after-forward') {
          req.socket.destroy(); // applied upstream; the client never learns the outcome
          return;
        }
        const outHeaders: Record<string, string> = {};
        for (const [k, v] of Object.entries(out.headers))
          if (typeof v === 'string' && !HOP_BY_HOP.has(k)) outHeaders[k] = v;
        res.writeHead(out.status, outHeaders);
        res.end(out.body);
      } catch {
        req.socket.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats,
    statuses,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export type OutageMode = Exclude<ProxyAction, 'forward'>;

export interface StoreOutage {
  /** Arms an outage: it starts after `afterRequests` more requests and lasts `forMs` of wall time. */
  arm(o: { afterRequests: number; forMs: number; mode: OutageMode }): void;
  /** The `decide` function for {@link startFaultProxy}. */
  decide(): ProxyAction;
  /** Outages that started. */
  started: number;
}

/** A brief, total outage that starts mid-stream (after N requests), for a proxy in front of the store. */
export function storeOutage(): StoreOutage {
  let armed: { countdown: number; forMs: number; mode: OutageMode } | undefined;
  let active: { untilMs: number; mode: OutageMode } | undefined;
  const o: StoreOutage = {
    started: 0,
    arm: (a) => {
      armed = { countdown: a.afterRequests, forMs: a.forMs, mode: a.mode };
    },
    decide: () => {
      if (armed && armed.countdown-- <= 0) {
        active = { untilMs: Date.now() + armed.forMs, mode: armed.mode };
        armed = undefined;
        o.started += 1;
      }
      if (active && Date.now() >= active.untilMs) active = undefined;
      return active?.mode ?? 'forward';
    },
  };
  return o;
}
