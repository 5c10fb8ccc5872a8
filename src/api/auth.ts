import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { AppError, checkIamAccessToken, IAM_ACCESS_TOKEN_CLAIMS, MAX_TOKEN_LIFETIME_SECONDS } from '../core/index.js';

/** What a caller may do: auditors read; operators read and act. */
export const ApiRole = { AUDITOR: 'auditor', OPERATOR: 'operator' } as const;
export type ApiRole = (typeof ApiRole)[keyof typeof ApiRole];

/** What a route needs. */
export type Permission = 'read' | 'act';

/** How the API authenticates callers (IAM bearer JWTs) and which role each IAM identity has. */
export interface ApiAuthConfig {
  /** IAM JWKS endpoint, e.g. `https://iam.cloud.ibm.com/identity/keys`. */
  jwksUrl: string;
  /** Expected `iss` claim. */
  issuer: string;
  /** Expected `aud` claim, if IAM sets one for this API. */
  audience?: string;
  /** Role by IAM id (`iam_id` claim, else `sub`). Identities not listed get 403. */
  roles: Record<string, ApiRole>;
  /**
   * Local stack only: the local IAM's token endpoint (`http://127.0.0.1:…/identity/token`). When set, the timeline
   * page's login form also accepts an API key and exchanges it there. Never in production: the form would answer
   * whether a key is valid to anyone, so `createApi` refuses any URL that is not http on a loopback address, and
   * `functions/api.ts` sets it only with `LOCKSTEP_DEV_UI_API_KEY_LOGIN=true` (set by `lockstep dev`).
   */
  iamTokenUrl?: string;
}

/** A verified caller. The token itself is never kept here (nor logged). */
export interface Principal {
  iamId: string;
  role: ApiRole;
  /** Token expiry, seconds since the epoch. */
  expiresAtSec?: number;
}

export interface Authenticator {
  /** Verifies a bearer token and resolves its role. @throws {AppError} UNAUTHENTICATED | FORBIDDEN | UPSTREAM_UNAVAILABLE */
  authenticate(token: string | undefined): Promise<Principal>;
}

const ALLOWED_PERMISSIONS: Record<ApiRole, readonly Permission[]> = {
  auditor: ['read'],
  operator: ['read', 'act'],
};

/** Token-shaped: three base64url segments, bounded length. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_TOKEN_CHARS = 8192;

/** Throws FORBIDDEN unless `principal` may do `permission`. */
export function requirePermission(principal: Principal, permission: Permission): void {
  if (!ALLOWED_PERMISSIONS[principal.role].includes(permission)) {
    throw new AppError('FORBIDDEN', `Role ${principal.role} may not ${permission}; this needs the operator role`, {
      details: { role: principal.role, needs: permission },
    });
  }
}

/** Extracts the token from an `Authorization: Bearer …` header (undefined when absent). */
export function bearerToken(headers: Record<string, string>): string | undefined {
  const h = headers.authorization;
  if (h === undefined) return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  if (!m) throw new AppError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <IAM access token>"');
  return m[1];
}

/**
 * Verifies IAM JWTs against the IAM JWKS with jose: RS256 only, issuer, audience (when configured) and expiry
 * checked. The key set is cached and fetched again when a token names an unknown `kid` (at most every 30 s).
 */
export function createAuthenticator(config: ApiAuthConfig): Authenticator {
  const jwks = createRemoteJWKSet(new URL(config.jwksUrl), {
    cacheMaxAge: 10 * 60_000,
    cooldownDuration: 30_000,
    timeoutDuration: 5_000,
  });
  return {
    async authenticate(token) {
      if (token === undefined || token === '') {
        throw new AppError('UNAUTHENTICATED', 'Send an IAM access token as "Authorization: Bearer <token>"');
      }
      if (token.length > MAX_TOKEN_CHARS || !JWT_SHAPE.test(token)) {
        throw new AppError('UNAUTHENTICATED', 'The bearer token is not a JWT; send an IAM access token');
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: ['RS256'],
          ...IAM_ACCESS_TOKEN_CLAIMS,
        }));
      } catch (err) {
        throw translateJoseError(err);
      }
      // IAM access tokens carry no audience; a token naming one was issued for another relying party (e.g. an OIDC
      // ID token of another client) and must not be accepted here unless this API is that audience.
      if (config.audience === undefined && payload.aud !== undefined) {
        throw new AppError('UNAUTHENTICATED', 'The token was issued for another audience; send an IAM access token');
      }
      const iamId = checkIamAccessToken(payload);
      return { iamId, role: roleFor(config, iamId), expiresAtSec: payload.exp };
    },
  };
}

/** The configured role of an IAM identity. @throws {AppError} FORBIDDEN when it has none */
export function roleFor(config: Pick<ApiAuthConfig, 'roles'>, iamId: string): ApiRole {
  const role = Object.hasOwn(config.roles, iamId) ? config.roles[iamId] : undefined;
  if (role !== ApiRole.AUDITOR && role !== ApiRole.OPERATOR) {
    throw new AppError('FORBIDDEN', 'This identity has no lockstep role; ask an administrator to grant auditor', {
      details: { iamId },
    });
  }
  return role;
}

function translateJoseError(err: unknown): AppError {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && code.startsWith('ERR_J')) {
    if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID' || code === 'ERR_JOSE_GENERIC') {
      return new AppError('UPSTREAM_UNAVAILABLE', 'The IAM key set could not be read', { retryable: true, cause: err });
    }
    const why: Record<string, string> = {
      ERR_JWT_EXPIRED: 'The token has expired; get a new IAM access token',
      ERR_JWT_CLAIM_VALIDATION_FAILED: 'The token was not issued for this API (issuer, audience or time claims)',
      ERR_JWKS_NO_MATCHING_KEY: 'The token is signed by a key IAM does not publish',
      ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'The token signature is not valid',
      ERR_JOSE_ALG_NOT_ALLOWED: 'The token must be signed with RS256',
    };
    const claim = (err as { claim?: unknown }).claim;
    const reason = (err as { reason?: unknown }).reason;
    if (reason === 'missing' && (claim === 'exp' || claim === 'iat')) {
      return new AppError('UNAUTHENTICATED', `The token has no ${claim} claim; IAM access tokens carry exp and iat`, {
        cause: err,
      });
    }
    if (claim === 'iat') {
      return new AppError(
        'UNAUTHENTICATED',
        `The token was issued in the future or more than ${MAX_TOKEN_LIFETIME_SECONDS / 60} minutes ago; get a new IAM access token`,
        { cause: err },
      );
    }
    return new AppError('UNAUTHENTICATED', why[code] ?? 'The bearer token is not a valid IAM access token', {
      cause: err,
    });
  }
  // fetch failures (connection refused, DNS) come as plain errors
  return new AppError('UPSTREAM_UNAVAILABLE', 'The IAM key set could not be fetched', { retryable: true, cause: err });
}

/**
 * Exchanges an IAM API key for an access token at `iamTokenUrl` (used by the timeline page's login form).
 * @throws {AppError} UNAUTHENTICATED when IAM refuses the key, UPSTREAM_UNAVAILABLE when IAM cannot be reached
 */
export async function exchangeApiKey(iamTokenUrl: string, apiKey: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(iamTokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: apiKey }),
      signal: AbortSignal.timeout(5_000),
    });
  } catch (err) {
    throw new AppError('UPSTREAM_UNAVAILABLE', 'IAM could not be reached to exchange the API key', {
      retryable: true,
      cause: err,
    });
  }
  if (res.status >= 500) {
    throw new AppError('UPSTREAM_UNAVAILABLE', 'IAM failed to exchange the API key', { retryable: true });
  }
  const body = (await res.json().catch(() => ({}))) as { access_token?: unknown };
  if (!res.ok || typeof body.access_token !== 'string') {
    throw new AppError('UNAUTHENTICATED', 'IAM refused the API key');
  }
  return body.access_token;
}
