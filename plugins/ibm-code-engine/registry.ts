/**
 * Checks that a code bundle image exists in IBM Cloud Container Registry before a function refers to it. The Code
 * Engine API cannot tell (it has no image lookup, and its build runs cannot take a local bundle), so the plugin asks
 * the registry itself: the OCI distribution API's `HEAD /v2/<name>/manifests/<tag>` (200 present, 404 absent), behind
 * the registry's token challenge, authenticated as `iamapikey` with the deployer's API key (docs `add-registry.md`).
 */

export class RegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryError';
  }
}

export interface ImageRef {
  host: string;
  /** `<namespace>/<repository>` */
  name: string;
  tag: string;
}

/** Splits `private.us.icr.io/ns/repo:tag`; the tag defaults to `latest` as the CLI documents. */
export function parseImageRef(ref: string): ImageRef {
  const slash = ref.indexOf('/');
  const path = ref.slice(slash + 1);
  const colon = path.lastIndexOf(':');
  const hasTag = colon > path.lastIndexOf('/');
  return {
    host: ref.slice(0, slash),
    name: hasTag ? path.slice(0, colon) : path,
    tag: hasTag ? path.slice(colon + 1) : 'latest',
  };
}

/** The registry API to ask: the public host (`private.us.icr.io` is reachable only from IBM Cloud's network). */
export function registryApiUrl(ref: ImageRef, override?: string): string {
  return (override || `https://${ref.host.replace(/^private\./, '')}`).replace(/\/$/, '');
}

function bearerChallenge(header: string | null): { realm: string; service?: string; scope?: string } | undefined {
  if (!header || !/^Bearer\s/i.test(header)) return undefined;
  const params = Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  return params.realm ? { realm: params.realm, service: params.service, scope: params.scope } : undefined;
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** True when the image's manifest exists, false on 404; throws on any other answer (with what to check). */
export async function imageExists(refText: string, apiKey: string, endpoint?: string): Promise<boolean> {
  const ref = parseImageRef(refText);
  const url = `${registryApiUrl(ref, endpoint)}/v2/${ref.name}/manifests/${encodeURIComponent(ref.tag)}`;
  const head = (auth?: string) =>
    fetch(url, { method: 'HEAD', headers: { accept: MANIFEST_TYPES, ...(auth ? { authorization: auth } : {}) } });
  const basic = `Basic ${Buffer.from(`iamapikey:${apiKey}`).toString('base64')}`;
  let resp = await head(basic);
  const challenge = resp.status === 401 ? bearerChallenge(resp.headers.get('www-authenticate')) : undefined;
  if (challenge) {
    const tokenUrl = new URL(challenge.realm);
    if (challenge.service) tokenUrl.searchParams.set('service', challenge.service);
    tokenUrl.searchParams.set('scope', challenge.scope ?? `repository:${ref.name}:pull`);
    const t = await fetch(tokenUrl, { headers: { authorization: basic, accept: 'application/json' } });
    const body = (await t.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!t.ok || !token) {
      throw new RegistryError(
        `the registry refused the API key for ${ref.host}/${ref.name} (${t.status}): it needs Reader access to the registry namespace`,
      );
    }
    resp = await head(`Bearer ${token}`);
  }
  if (resp.status === 200) return true;
  if (resp.status === 404) return false;
  throw new RegistryError(`checking ${refText} in the registry answered ${resp.status}`);
}
