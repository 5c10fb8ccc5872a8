import type { Versioned } from '../app/ports.js';
import { AppError } from '../core/index.js';

/**
 * A Cloudant 409: someone else wrote the document since it was read. `current` is the document as it is now
 * (absent if it no longer exists), so the caller can re-apply its change without another read.
 */
export class StoreConflictError<T = unknown> extends AppError {
  readonly current: Versioned<T> | undefined;

  constructor(message: string, opts: { docId: string; current?: Versioned<T>; cause?: unknown }) {
    super('STORE_CONFLICT', message, {
      details: { docId: opts.docId, currentRev: opts.current?.rev ?? null },
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
    });
    this.current = opts.current;
  }
}

/** True when `err` is a store conflict (by code, so bundled copies still match). */
export function isStoreConflict<T = unknown>(err: unknown): err is StoreConflictError<T> {
  return err instanceof AppError && err.code === 'STORE_CONFLICT';
}

/** The parts of an ibm-cloud-sdk-core error lockstep looks at. Never the raw body (it may echo a document). */
interface SdkError {
  status?: number;
  code?: string | number;
  message?: string;
  result?: { error?: unknown; reason?: unknown };
}

/** HTTP status of an SDK error; undefined for network errors and timeouts. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as SdkError | null)?.status;
  return typeof s === 'number' && s > 0 ? s : undefined;
}

function couchReason(err: SdkError): string {
  const e = typeof err.result?.error === 'string' ? err.result.error : '';
  const r = typeof err.result?.reason === 'string' ? err.result.reason : '';
  return [e, r].filter(Boolean).join(': ').slice(0, 200);
}

/**
 * Translates an SDK failure into an AppError. 5xx, 429 and network failures → STORE_UNAVAILABLE (retryable);
 * 401/403 and IAM token refusals (BXNIM… codes) → CONFIG_INVALID; 413 → PAYLOAD_TOO_LARGE; 400 → VALIDATION_FAILED; anything else INTERNAL.
 */
export function toStoreError(err: unknown, what: string): AppError {
  if (err instanceof AppError) return err;
  const e = (err ?? {}) as SdkError;
  const status = statusOf(err);
  const reason = couchReason(e);
  const suffix = reason ? ` (${reason})` : '';
  if (status === undefined || status === 429 || status >= 500) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    return new AppError('STORE_UNAVAILABLE', `Cloudant is unavailable while trying to ${what}${suffix}; retry later`, {
      retryable: true,
      details: { status: status ?? 0, ...(code ? { errno: code } : {}) },
      cause: err,
    });
  }
  // IAM refused to issue the token (an unknown or disabled API key, a bad trusted profile): IAM error codes are BXNIM…
  const iamCode = (e.result as { errorCode?: unknown } | undefined)?.errorCode;
  if (typeof iamCode === 'string' && /^BXNIM\d+E$/.test(iamCode)) {
    return new AppError(
      'CONFIG_INVALID',
      `IAM refused the store credentials while trying to ${what} (${iamCode}); check CLOUDANT_APIKEY or the trusted profile`,
      { details: { status: status ?? 0, iamErrorCode: iamCode }, cause: err },
    );
  }
  if (status === 401 || status === 403) {
    return new AppError(
      'CONFIG_INVALID',
      `Cloudant refused the credentials while trying to ${what}${suffix}; check CLOUDANT_APIKEY or the trusted profile and its access policy`,
      { details: { status }, cause: err },
    );
  }
  if (status === 413) {
    return new AppError('PAYLOAD_TOO_LARGE', `Cloudant refused the document as too large while trying to ${what}`, {
      details: { status },
      cause: err,
    });
  }
  if (status === 400) {
    return new AppError('VALIDATION_FAILED', `Cloudant rejected the request to ${what}${suffix}`, {
      details: { status },
      cause: err,
    });
  }
  if (status === 404) {
    return new AppError(
      'STORE_UNAVAILABLE',
      `Cloudant has no such database while trying to ${what}${suffix}; run ensureSetup()`,
      {
        details: { status },
        cause: err,
      },
    );
  }
  return new AppError('INTERNAL', `Unexpected Cloudant answer ${status} while trying to ${what}${suffix}`, {
    details: { status },
    cause: err,
  });
}
