/**
 * Every error code lockstep can raise. `src/api/httpStatus.ts` maps each one to exactly one HTTP status; the
 * compiler demands a row for every code added here. Tell errors apart by `code`, never by `instanceof`.
 */
export const ERROR_CODES = [
  // input and access
  'VALIDATION_FAILED',
  'INVALID_CURSOR',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'CONFIG_INVALID',
  // domain lookups
  'GROUP_NOT_FOUND',
  'GROUP_EXISTS',
  'RUN_NOT_FOUND',
  'RUN_STATE_INVALID',
  'GENERATION_NOT_FOUND',
  'VERSION_NOT_FOUND',
  // rotation rules
  'RUN_IN_PROGRESS',
  'ROTATION_TOO_SOON',
  'MEMBER_NOT_ACTIVE',
  'MATERIAL_MISMATCH',
  'DEADLINE_EXCEEDED',
  // Key Protect
  'KEY_NOT_FOUND',
  'KEY_DELETED',
  'IMPORT_TOKEN_EXPIRED',
  'IMPORT_TOKEN_NONCE_MISMATCH',
  'UPSTREAM_REJECTED',
  'UPSTREAM_RATE_LIMITED',
  'UPSTREAM_UNAVAILABLE',
  // store and coordination
  'STORE_CONFLICT',
  'STORE_UNAVAILABLE',
  'LEASE_HELD',
  'LEASE_LOST',
  // audit
  'CHAIN_BROKEN',
  // anything else
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Values allowed in error details: never key material, tokens or raw upstream bodies. */
export type ErrorDetailValue = string | number | boolean | null | readonly string[] | readonly number[];
export type ErrorDetails = Readonly<Record<string, ErrorDetailValue>>;

export interface AppErrorOptions {
  retryable?: boolean;
  details?: ErrorDetails;
  cause?: unknown;
}

/** The one error type lockstep raises. `message` says what to fix; `details` carries allowlisted context. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** True when `err` is an AppError (by shape, so bundled copies still match). */
export function isAppError(err: unknown): err is AppError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { name?: unknown }).name === 'AppError' &&
    typeof (err as { code?: unknown }).code === 'string' &&
    (ERROR_CODES as readonly string[]).includes((err as { code: string }).code)
  );
}

/** True when `err` is an AppError with one of `codes`. */
export function hasCode(err: unknown, ...codes: ErrorCode[]): err is AppError {
  return isAppError(err) && codes.includes(err.code);
}
