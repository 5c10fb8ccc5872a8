/**
 * A local stand-in for the part of IBM Cloud Container Registry the deploy plugin reads: the OCI distribution API's
 * manifest check (`HEAD /v2/<name>/manifests/<tag>`: 200 or 404) behind the registry token flow (401 with a
 * `WWW-Authenticate: Bearer realm=…` challenge; the realm answers a token for Basic `iamapikey:<API key>`).
 * Images are keyed by `<namespace>/<repository>:<tag>`, whatever the ICR host (public or `private.`).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RegistryStandIn {
  /** Base URL (`http://127.0.0.1:<port>`), what the plugin's `codeBundle.registryEndpoint` points at. */
  url: string;
  /** Records an image as pushed (`us.icr.io/ns/repo:tag`). */
  push(ref: string): void;
  /** Whether an image was pushed (host ignored). */
  has(ref: string): boolean;
  /** Manifest checks seen, `<name>:<tag>` with the status answered. */
  checks: Array<{ image: string; status: number }>;
  close(): Promise<void>;
}

export interface RegistryOptions {
  /** Decides whether an API key sent as Basic `iamapikey:<key>` is valid. Default: any non-empty key. */
  acceptApiKey?: (apiKey: string) => boolean | Promise<boolean>;
}

/** `host/ns/repo:tag` → `ns/repo:tag` (tag `latest` when absent, as the CLI documents). */
function imageKey(ref: string): string {
  const path = ref.slice(ref.indexOf('/') + 1);
  const lastSlash = path.lastIndexOf('/');
  return path.slice(lastSlash + 1).includes(':') ? path : `${path}:latest`;
}

export async function startRegistryStandIn(opts: RegistryOptions = {}): Promise<RegistryStandIn> {
  const images = new Set<string>();
  const tokens = new Map<string, string>(); // token → repository name it may pull
  const checks: RegistryStandIn['checks'] = [];
  const acceptApiKey = opts.acceptApiKey ?? ((k: string) => k.length > 0);
  let url = '';

  const challenge = (scope?: string) =>
    `Bearer realm="${url}/oauth/token",service="registry"${scope ? `,scope="${scope}"` : ''}`;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
    };
    if (u.pathname === '/oauth/token' && req.method === 'GET') {
      const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const [user, ...rest] = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8').split(':') : [];
      const key = rest.join(':');
      if (user !== 'iamapikey' || !key || !(await acceptApiKey(key))) {
        return json(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid iamapikey credentials' }] });
      }
      const scope = /^repository:([^:]+):pull$/.exec(u.searchParams.get('scope') ?? '');
      const token = randomBytes(16).toString('hex');
      tokens.set(token, scope?.[1] ?? '');
      return json(200, { token, access_token: token, expires_in: 300 });
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(u.pathname);
    if (!m || (req.method !== 'HEAD' && req.method !== 'GET')) {
      if (u.pathname === '/v2/')
        return json(401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': challenge() });
      return json(404, { errors: [{ code: 'NAME_UNKNOWN', message: 'unknown path' }] });
    }
    const [, name, tag] = m;
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!bearer || tokens.get(bearer[1]!) !== name) {
      checks.push({ image: `${name}:${tag}`, status: 401 });
      return json(
        401,
        { errors: [{ code: 'UNAUTHORIZED' }] },
        {
          'www-authenticate': challenge(`repository:${name}:pull`),
        },
      );
    }
    const found = images.has(`${name}:${tag}`);
    checks.push({ image: `${name}:${tag}`, status: found ? 200 : 404 });
    if (!found) return json(404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    return json(200, {}, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    push: (ref) => {
      images.add(imageKey(ref));
    },
    has: (ref) => images.has(imageKey(ref)),
    checks,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
