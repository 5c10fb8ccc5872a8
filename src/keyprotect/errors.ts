import { reasonCodeOf } from '../client/transport.js';
import type { Clock, ErrorCode } from '../core/index.js';
import { AppError } from '../core/index.js';

/** The upstream calls this adapter makes; names appear in logs and in `details.operation`. */
export const KpOperation = {
  GET_KEY: 'getKey',
  LIST_VERSIONS: 'listVersions',
  CREATE_KEY: 'createKey',
  ROTATE: 'rotate',
  WRAP: 'wrap',
  UNWRAP: 'unwrap',
  POST_IMPORT_TOKEN: 'postImportToken',
  GET_IMPORT_TOKEN: 'getImportToken',
} as const;
export type KpOperation = (typeof KpOperation)[keyof typeof KpOperation];

/** Calls that change nothing (or only replace the import token before it is used) and may be re-sent. */
export const IDEMPOTENT_OPERATIONS: ReadonlySet<KpOperation> = new Set<KpOperation>([
  KpOperation.GET_KEY,
  KpOperation.LIST_VERSIONS,
  KpOperation.WRAP,
  KpOperation.UNWRAP,
  KpOperation.POST_IMPORT_TOKEN,
  KpOperation.GET_IMPORT_TOKEN,
]);

/** Where an upstream call went; every AppError of this adapter carries it in `details`. */
export interface CallContext {
  operation: KpOperation;
  region: string;
  correlationId: string;
  /** The instance addressed (diagnosis of 401s). */
  instanceId?: string;
  /** The key ring sent as `X-Kms-Key-Ring`, if any. */
  keyRingId?: string;
}

/**
 * The Key Protect service role each operation needs (ibm-cloud-docs/key-protect `concepts/manage-access.md`):
 * key metadata, versions, wrap and unwrap need Reader; creating and rotating keys and import tokens need Writer.
 */
export const REQUIRED_ROLE: Readonly<Record<KpOperation, 'Reader' | 'Writer'>> = Object.freeze({
  getKey: 'Reader',
  listVersions: 'Reader',
  createKey: 'Writer',
  rotate: 'Writer',
  wrap: 'Reader',
  unwrap: 'Reader',
  postImportToken: 'Writer',
  getImportToken: 'Writer',
});

/**
 * Rewrites a Key Protect 401 (the token was issued by IAM, so Key Protect refused the identity, not the credential)
 * into a diagnosis: which identity lacks which role on which instance — or the instance's network policy refuses
 * the endpoint used. Key Protect answers 401 for unauthorized and forbidden alike (at-events.md), so both causes
 * are named. Other errors are returned unchanged.
 */
export function diagnoseUnauthorized(err: AppError, identity: string | undefined): AppError {
  if (err.code !== 'UNAUTHENTICATED' || err.details.status !== 401) return err;
  const op = String(err.details.operation ?? '') as KpOperation;
  const role = REQUIRED_ROLE[op] ?? 'Reader';
  const instance = typeof err.details.instanceId === 'string' ? err.details.instanceId : 'unknown';
  const ring = typeof err.details.keyRingId === 'string' ? ` (key ring ${err.details.keyRingId})` : '';
  const who = identity ?? 'the configured identity';
  const message =
    `Key Protect refused ${op} in ${err.details.region}: identity ${who} lacks a Key Protect role on instance ` +
    `${instance}${ring} (needs ${role} or higher), or the instance's network policy refuses this endpoint ` +
    '(a private-only instance answers only its private endpoint); grant the role or use the private endpoint';
  return new AppError(err.code, message, {
    retryable: false,
    details: { ...err.details, requiredRole: role, identity: identity ?? null, diagnosis: 'no_role_or_network' },
    cause: err.cause ?? err,
  });
}

/** What is known about one failed upstream call, taken from an SDK (sdk-core) error. Internal. */
export interface UpstreamFailure {
  /** HTTP status; absent when no response arrived. */
  status?: number;
  /** `resources[0].reasons[0].code` of the Key Protect error envelope. */
  kpCode?: string;
  /** Transport error code (ECONNRESET, ECONNABORTED for a timeout, …) when no response arrived. */
  networkCode?: string;
  /** Parsed `Retry-After`, in milliseconds. */
  retryAfterMs?: number;
  /** The request failed before it could have reached Key Protect (connection refused, DNS, authentication). */
  notSent?: boolean;
  /** The caller's AbortSignal fired. */
  aborted?: boolean;
  /** Not an HTTP or transport failure at all (a bug or a bad response shape). */
  unexpected?: boolean;
}

const NOT_SENT_NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_INVALID_URL']);

/**
 * Reads an sdk-core error (`status`, `result`, `headers`, `statusText`) without trusting its shape and without
 * touching its body beyond the reason code.
 */
export function describeSdkError(err: unknown, clock: Clock): UpstreamFailure {
  if (typeof err !== 'object' || err === null) return { unexpected: true };
  const e = err as { status?: unknown; statusText?: unknown; result?: unknown; headers?: unknown; body?: unknown };
  if (typeof e.status === 'number') {
    const failure: UpstreamFailure = { status: e.status };
    const kpCode = reasonCodeOf(e.result);
    if (kpCode) failure.kpCode = kpCode;
    const retryAfterMs = parseRetryAfter(headerOf(e.headers, 'retry-after'), clock.nowMs());
    if (retryAfterMs !== undefined) failure.retryAfterMs = retryAfterMs;
    return failure;
  }
  const networkCode = typeof e.statusText === 'string' ? e.statusText : undefined;
  if (networkCode === 'ERR_CANCELED') return { aborted: true, networkCode };
  if (networkCode !== undefined || typeof e.body === 'string') {
    return {
      networkCode: networkCode ?? 'UNKNOWN',
      ...(networkCode && NOT_SENT_NETWORK_CODES.has(networkCode) ? { notSent: true } : {}),
    };
  }
  return { unexpected: true };
}

/** `Retry-After` as delta-seconds or an IMF-fixdate, in ms from now; undefined if absent or unparsable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? String(v[0]) : v == null ? undefined : String(v);
  }
  return undefined;
}

interface Mapped {
  code: ErrorCode;
  retryable: boolean;
  message: string;
}

/**
 * Maps a Key Protect failure to an {@link AppError}. The table (first match wins):
 *
 * | Key Protect                                        | AppError code                 | retryable |
 * |----------------------------------------------------|-------------------------------|-----------|
 * | caller's AbortSignal fired                         | `DEADLINE_EXCEEDED`           | no        |
 * | `IMPORT_TOKEN_EXPIRED_ERR` (any status)            | `IMPORT_TOKEN_EXPIRED`        | no        |
 * | `INCORRECT_NONCE_ERR`, `INCORRECT_NONCE_IV_ERR`    | `IMPORT_TOKEN_NONCE_MISMATCH` | no        |
 * | `KEY_NOT_FOUND_ERR` (404)                          | `KEY_NOT_FOUND`               | no        |
 * | 410 (`KEY_DELETED_ERR`)                            | `KEY_DELETED`                 | no        |
 * | 409 `KEY_ROTATION_NOT_PERMITTED`                   | `ROTATION_TOO_SOON`           | no        |
 * | 409 `KEY_ACTION_INVALID_STATE_ERR`                 | `MEMBER_NOT_ACTIVE`           | no        |
 * | 422 `UNPROCESSABLE_CIPHERTEXT_ERR`                 | `MATERIAL_MISMATCH`           | no        |
 * | 401                                                | `UNAUTHENTICATED`             | no        |
 * | 403                                                | `FORBIDDEN`                   | no        |
 * | 429                                                | `UPSTREAM_RATE_LIMITED`       | yes       |
 * | 5xx, no response (reset, refused, timeout)         | `UPSTREAM_UNAVAILABLE`        | yes       |
 * | any other 4xx                                      | `UPSTREAM_REJECTED`           | no        |
 * | anything else (not an HTTP/transport error)        | `INTERNAL`                    | no        |
 *
 * `details` always holds `kpCode`, `status` (null without a response), `correlationId`, `region` and `operation`;
 * plus `networkCode` and `retryAfterMs` when known. Never bodies, never material.
 *
 * For calls that are not idempotent (create, rotate), `details.ambiguous` is `true` when the request may have been
 * applied (5xx, reset, timeout, abort after sending): the caller must read the key's versions before re-sending.
 * It is `false` when the request provably did not take effect (refused connection, 4xx, 429).
 */
export function toKeyProtectError(failure: UpstreamFailure, ctx: CallContext, cause?: unknown): AppError {
  const mapped = mapFailure(failure, ctx);
  const details: Record<string, string | number | boolean | null> = {
    kpCode: failure.kpCode ?? null,
    status: failure.status ?? null,
    correlationId: ctx.correlationId,
    region: ctx.region,
    operation: ctx.operation,
  };
  if (ctx.instanceId) details.instanceId = ctx.instanceId;
  if (ctx.keyRingId) details.keyRingId = ctx.keyRingId;
  if (failure.networkCode) details.networkCode = failure.networkCode;
  if (failure.retryAfterMs !== undefined) details.retryAfterMs = failure.retryAfterMs;
  if (!IDEMPOTENT_OPERATIONS.has(ctx.operation)) details.ambiguous = isAmbiguous(failure);
  return new AppError(mapped.code, mapped.message, { retryable: mapped.retryable, details, cause });
}

/** True when a non-idempotent request may or may not have been applied. */
export function isAmbiguous(failure: UpstreamFailure): boolean {
  if (failure.notSent || failure.unexpected) return false;
  if (failure.status === undefined) return true; // reset, timeout, abort mid-flight
  return failure.status >= 500;
}

function mapFailure(f: UpstreamFailure, ctx: CallContext): Mapped {
  const where = `Key Protect ${ctx.operation} in ${ctx.region}`;
  if (f.aborted) {
    return { code: 'DEADLINE_EXCEEDED', retryable: false, message: `${where} was aborted by the caller's deadline` };
  }
  if (f.unexpected) return { code: 'INTERNAL', retryable: false, message: `${where} failed unexpectedly` };
  switch (f.kpCode) {
    case 'IMPORT_TOKEN_EXPIRED_ERR':
      return {
        code: 'IMPORT_TOKEN_EXPIRED',
        retryable: false,
        message: `${where}: the import token expired or ran out of retrievals; start the secure import again`,
      };
    case 'INCORRECT_NONCE_ERR':
    case 'INCORRECT_NONCE_IV_ERR':
      return {
        code: 'IMPORT_TOKEN_NONCE_MISMATCH',
        retryable: false,
        message: `${where}: the nonce does not match the instance's current import token (another token was created in between, or the seal is corrupt); serialise secure imports per instance and retry`,
      };
    case 'KEY_NOT_FOUND_ERR':
      return {
        code: 'KEY_NOT_FOUND',
        retryable: false,
        message: ctx.keyRingId
          ? `${where}: the key does not exist in key ring ${ctx.keyRingId} (moved to another ring, or purged); check the member's key ring, key id and instance id`
          : `${where}: the key does not exist (or was purged); check the key id and instance id`,
      };
  }
  if (f.status === 410) {
    return { code: 'KEY_DELETED', retryable: false, message: `${where}: the key is deleted` };
  }
  if (f.status === 409 && f.kpCode === 'KEY_ROTATION_NOT_PERMITTED') {
    return {
      code: 'ROTATION_TOO_SOON',
      retryable: false,
      message: `${where}: the key was rotated less than an hour ago (one rotation per hour); after an ambiguous rotate, read the versions first: it may have been applied`,
    };
  }
  if (f.status === 409 && f.kpCode === 'KEY_ACTION_INVALID_STATE_ERR') {
    return {
      code: 'MEMBER_NOT_ACTIVE',
      retryable: false,
      message: `${where}: the key is not in a state that allows this action (e.g. disabled); enable it first`,
    };
  }
  if (f.status === 422 && f.kpCode === 'UNPROCESSABLE_CIPHERTEXT_ERR') {
    return {
      code: 'MATERIAL_MISMATCH',
      retryable: false,
      message: `${where}: the ciphertext cannot be unwrapped by this key (different material, different AAD or corrupt)`,
    };
  }
  if (f.status === 401) {
    return {
      code: 'UNAUTHENTICATED',
      retryable: false,
      message: `${where}: Key Protect rejected the credentials; check the API key or trusted profile`,
    };
  }
  if (f.status === 403) {
    return {
      code: 'FORBIDDEN',
      retryable: false,
      message: `${where}: the identity lacks the Key Protect role for this action (Writer/Manager to rotate or import, Reader to wrap)`,
    };
  }
  if (f.status === 429) {
    return { code: 'UPSTREAM_RATE_LIMITED', retryable: true, message: `${where} was rate limited; retry later` };
  }
  if (f.status === undefined || f.status >= 500) {
    return {
      code: 'UPSTREAM_UNAVAILABLE',
      retryable: true,
      message: `${where} failed: ${f.status === undefined ? `no response (${f.networkCode ?? 'network error'})` : `status ${f.status}`}`,
    };
  }
  return {
    code: 'UPSTREAM_REJECTED',
    retryable: false,
    message: `${where} was rejected (status ${f.status}${f.kpCode ? `, ${f.kpCode}` : ''})`,
  };
}

/**
 * Adds the call context to an AppError raised before the request left (e.g. by the authenticator) and marks it as
 * not applied. Other errors are mapped with {@link toKeyProtectError}.
 */
export function withCallContext(err: AppError, ctx: CallContext): AppError {
  const details = {
    kpCode: null,
    status: null,
    ...err.details,
    correlationId: ctx.correlationId,
    region: ctx.region,
    operation: ctx.operation,
    ...(IDEMPOTENT_OPERATIONS.has(ctx.operation) ? {} : { ambiguous: false }),
  };
  return new AppError(err.code, err.message, { retryable: err.retryable, details, cause: err.cause ?? err });
}
