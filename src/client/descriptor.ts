/**
 * Reads a group's endpoints from lockstep's API (`GET /v1/groups/{id}/endpoints`, auditor role) and turns them into
 * the member list of a keyring.
 */
import type { MemberEndpoint, SdkAuthenticator } from './types.js';

/** One member as `GET /v1/groups/{id}/endpoints` returns it (see the OpenAPI document). */
export interface EndpointMember {
  role: 'primary' | 'duplicate';
  region: string;
  instanceId: string;
  keyId: string;
  crn?: string;
  keyRingId?: string | null;
  endpoints: { public: string; private?: string | null };
  health?: unknown;
}

export interface FetchEndpointsOptions {
  apiUrl: string;
  groupId: string;
  authenticator: SdkAuthenticator;
  endpointType: 'public' | 'private';
  timeoutMs: number;
  /** Which Key Protect URLs a descriptor may name (default {@link isKeyProtectUrl}). */
  trustUrl?: (url: string) => boolean;
}

const IBM_KMS = /^https:\/\/(private\.)?[a-z]{2}-[a-z]{2,6}\.kms\.cloud\.ibm\.com\/?$/;
const LOOPBACK = /^https?:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?\/?$/;

/**
 * The default for URLs read from the API: IBM's Key Protect endpoints (`https://[private.]<region>.kms.cloud.ibm.com`)
 * and loopback (the local stack). The keyring sends its IAM token and the caller's plaintext DEKs to these URLs, so a
 * descriptor naming any other host is refused (and the last known members are kept) unless `trustUrl` allows it.
 */
export function isKeyProtectUrl(url: string): boolean {
  return IBM_KMS.test(url) || LOOPBACK.test(url);
}

const GROUP_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** @throws {Error} when the API cannot be reached or answers something other than a valid descriptor */
export async function fetchEndpoints(opts: FetchEndpointsOptions): Promise<MemberEndpoint[]> {
  if (!GROUP_ID.test(opts.groupId)) throw new Error(`groupId "${opts.groupId}" is not a lockstep group id`);
  const base = opts.apiUrl.replace(/\/+$/, '');
  // sdk-core authenticators replace `headers` on the object they are given (they do not mutate it)
  const request: { headers: Record<string, string> } = { headers: { accept: 'application/json' } };
  await opts.authenticator.authenticate(request);
  const res = await fetch(`${base}/v1/groups/${encodeURIComponent(opts.groupId)}/endpoints`, {
    headers: request.headers,
    signal: AbortSignal.timeout(opts.timeoutMs),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`lockstep API answered ${res.status} for the endpoints of ${opts.groupId}`);
  let body: { members?: unknown };
  try {
    body = JSON.parse(text) as { members?: unknown };
  } catch {
    throw new Error('lockstep API answered with a body that is not JSON');
  }
  return parseEndpoints(body, opts.endpointType, opts.trustUrl ?? isKeyProtectUrl);
}

/** Maps the descriptor's members to keyring members (private URL when asked for and known, else public). */
export function parseEndpoints(
  body: { members?: unknown },
  endpointType: 'public' | 'private',
  trustUrl: (url: string) => boolean = isKeyProtectUrl,
): MemberEndpoint[] {
  if (!Array.isArray(body?.members) || body.members.length === 0) throw new Error('the descriptor lists no members');
  return (body.members as EndpointMember[]).map((m, i) => {
    const url = endpointType === 'private' ? (m?.endpoints?.private ?? m?.endpoints?.public) : m?.endpoints?.public;
    if (typeof url !== 'string') throw new Error(`descriptor member ${i} has no ${endpointType} endpoint`);
    if (!trustUrl(url)) {
      throw new Error(
        `descriptor member ${i} names ${url.slice(0, 100)}, which is not a trusted Key Protect URL (see trustUrl)`,
      );
    }
    return memberEndpoint(m, url);
  });
}

/** A keyring member from a member description (descriptor or group) and the URL to reach it. */
export function memberEndpoint(
  m: { role: MemberEndpoint['role']; region: string; instanceId: string; keyId: string; keyRingId?: string | null },
  url: string,
): MemberEndpoint {
  return {
    role: m.role,
    region: m.region,
    url,
    instanceId: m.instanceId,
    keyId: m.keyId,
    ...(typeof m.keyRingId === 'string' && m.keyRingId ? { keyRingId: m.keyRingId } : {}),
  };
}
