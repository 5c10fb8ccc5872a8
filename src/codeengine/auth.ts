/**
 * Request authentication for HTTP-triggered functions: a shared-secret HMAC over the body with a timestamp window,
 * an IAM bearer token (JWT verified against the IAM JWKS), or a static token header (for senders such as Event
 * Notifications that can only add fixed "sensitive headers"). Secrets are held as `Sensitive` values.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type { HttpRequest, Sensitive } from '../core/index.js';
import { AppError, checkIamAccessToken, IAM_ACCESS_TOKEN_CLAIMS } from '../core/index.js';
import type { Principal } from './context.js';

/** Header carrying the signing time (Unix seconds). */
export const TIMESTAMP_HEADER = 'x-lockstep-timestamp';
/** Header carrying `v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (several comma-separated allowed). */
export const SIGNATURE_HEADER = 'x-lockstep-signature';
/** Header carrying a static shared token. */
export const TOKEN_HEADER = 'x-lockstep-token';
/** Default accepted clock skew / replay window for signed requests. */
export const DEFAULT_SIGNATURE_WINDOW_SECONDS = 300;

/** The one answer to any unauthenticated request (it never says which check failed). */
export const UNAUTHENTICATED_MESSAGE =
  'Authenticate with a signed request (X-Lockstep-Timestamp + X-Lockstep-Signature), an IAM bearer token or the configured token header';

/** A named shared secret; several may be active at once while one is being rotated. */
export interface SharedSecret {
  id: string;
  secret: Sensitive<string>;
}

/** Tries to authenticate a request; `undefined` means "not my kind of credential" or "wrong credential". */
export type Authenticator = (req: HttpRequest, nowMs: number) => Promise<Principal | undefined>;

/** Computes the signature header value for a body (used by senders, the local stack and tests). */
export function signBody(secret: string, body: Buffer | string, timestampSeconds: number): Record<string, string> {
  const mac = createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
  return { [TIMESTAMP_HEADER]: String(timestampSeconds), [SIGNATURE_HEADER]: `v1=${mac}` };
}

function equalHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/**
 * HMAC authenticator. A request passes when its timestamp is within `windowSeconds` of now and one of its `v1=`
 * signatures matches one of the secrets. Replays inside the window are harmless because events are deduplicated by
 * id; replays outside it are refused.
 */
export function hmacAuthenticator(opts: { secrets: SharedSecret[]; windowSeconds?: number }): Authenticator {
  const windowSeconds = opts.windowSeconds ?? DEFAULT_SIGNATURE_WINDOW_SECONDS;
  return async (req, nowMs) => {
    const ts = req.headers[TIMESTAMP_HEADER];
    const sig = req.headers[SIGNATURE_HEADER];
    if (!ts || !sig || !/^\d{1,12}$/.test(ts)) return undefined;
    if (Math.abs(nowMs / 1000 - Number(ts)) > windowSeconds) return undefined;
    const offered = sig
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('v1='))
      .map((s) => s.slice(3));
    const body = req.body ?? Buffer.alloc(0);
    for (const { id, secret } of opts.secrets) {
      const expected = createHmac('sha256', secret.reveal()).update(`${ts}.`).update(body).digest('hex');
      if (offered.some((o) => /^[0-9a-f]{64}$/i.test(o) && equalHex(o, expected))) {
        return { method: 'hmac', subject: id };
      }
    }
    return undefined;
  };
}

/** Static-token authenticator (constant-time comparison of SHA-256 digests). */
export function staticTokenAuthenticator(opts: { tokens: SharedSecret[] }): Authenticator {
  return async (req) => {
    const offered = req.headers[TOKEN_HEADER];
    if (!offered) return undefined;
    const got = createHash('sha256').update(offered).digest();
    for (const { id, secret } of opts.tokens) {
      if (timingSafeEqual(got, createHash('sha256').update(secret.reveal()).digest())) {
        return { method: 'token', subject: id };
      }
    }
    return undefined;
  };
}

/**
 * IAM bearer authenticator: verifies an RS256 JWT against the IAM JWKS (`<iamUrl>/identity/keys`) and its issuer
 * (`<iamUrl>/identity`; pass it), refuses tokens that name an audience (IAM access tokens have none), and accepts
 * only the listed IAM ids (service ids or trusted profiles) when `allowedIamIds` is non-empty.
 */
export function iamBearerAuthenticator(opts: {
  jwksUrl: string;
  issuer?: string;
  allowedIamIds?: string[];
}): Authenticator {
  const jwks = createRemoteJWKSet(new URL(opts.jwksUrl));
  return async (req, nowMs) => {
    const auth = req.headers.authorization;
    const m = auth ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
    if (!m) return undefined;
    try {
      const { payload } = await jwtVerify(m[1]!, jwks, {
        algorithms: ['RS256'],
        currentDate: new Date(nowMs),
        ...(opts.issuer ? { issuer: opts.issuer } : {}),
        // exp and iat required, issued at most an hour ago: the same rules as the API (src/core/iamToken.ts)
        ...IAM_ACCESS_TOKEN_CLAIMS,
      });
      // IAM access tokens carry no audience: one that names an audience was issued for another relying party.
      if (payload.aud !== undefined) return undefined;
      // a lifetime of at most an hour and a string identity claim, or no identity at all
      const subject = checkIamAccessToken(payload);
      if (opts.allowedIamIds?.length && !opts.allowedIamIds.includes(subject)) return undefined;
      return { method: 'iam', subject };
    } catch {
      return undefined;
    }
  };
}

/**
 * The field of a cron subscription's JSON data that carries the shared secret. Code Engine delivers the data to a
 * function in `body` (base64 for `application/json`) and also unfolds its top-level keys into the params
 * (ibm-cloud-docs/codeengine `subscription-cron.md`, "Cron header and body information for events delivered to
 * functions"). The `Ce-Type: dev.knative.sources.ping` header itself proves nothing: any caller of a public function
 * can send it.
 */
export const CRON_SECRET_FIELD = 'cronSecret';

/** The data a cron subscription must carry for `secret` (what `ibmcloud ce sub cron create --data` is given). */
export function cronSubscriptionData(secret: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...extra, [CRON_SECRET_FIELD]: secret };
}

/**
 * Checks a cron ping's data for one of the configured secrets (constant-time comparison of SHA-256 digests; every
 * secret is compared, so several can be active while one is rotated). Returns the matching secret's id, or
 * `undefined` for anything else (no data, other data, a wrong secret).
 */
export function cronSecretId(data: unknown, secrets: readonly SharedSecret[]): string | undefined {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return undefined;
  const offered = (data as Record<string, unknown>)[CRON_SECRET_FIELD];
  if (typeof offered !== 'string' || offered.length === 0 || offered.length > 1024) return undefined;
  const got = createHash('sha256').update(offered).digest();
  let match: string | undefined;
  for (const { id, secret } of secrets) {
    if (timingSafeEqual(got, createHash('sha256').update(secret.reveal()).digest())) match ??= id;
  }
  return match;
}

/**
 * Runs the authenticators in order; the first that recognises the request wins.
 * @throws {AppError} UNAUTHENTICATED when none does (the message never says which check failed)
 */
export async function authenticate(
  authenticators: readonly Authenticator[],
  req: HttpRequest,
  nowMs: number,
): Promise<Principal> {
  for (const a of authenticators) {
    const p = await a(req, nowMs);
    if (p) return p;
  }
  throw new AppError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
}
