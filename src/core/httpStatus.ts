import type { ErrorCode } from './errors.js';
import { isAppError } from './errors.js';

/** The single table from error code to HTTP status. Every error response in lockstep goes through it. */
export const httpStatusByCode: Readonly<Record<ErrorCode, number>> = {
  VALIDATION_FAILED: 400,
  INVALID_CURSOR: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFIG_INVALID: 500,
  GROUP_NOT_FOUND: 404,
  GROUP_EXISTS: 409,
  RUN_NOT_FOUND: 404,
  RUN_STATE_INVALID: 409,
  GENERATION_NOT_FOUND: 404,
  VERSION_NOT_FOUND: 404,
  RUN_IN_PROGRESS: 409,
  ROTATION_TOO_SOON: 409,
  MEMBER_NOT_ACTIVE: 409,
  MATERIAL_MISMATCH: 409,
  DEADLINE_EXCEEDED: 503,
  KEY_NOT_FOUND: 404,
  KEY_DELETED: 410,
  IMPORT_TOKEN_EXPIRED: 409,
  IMPORT_TOKEN_NONCE_MISMATCH: 409,
  UPSTREAM_REJECTED: 502,
  UPSTREAM_RATE_LIMITED: 503,
  UPSTREAM_UNAVAILABLE: 503,
  STORE_CONFLICT: 409,
  STORE_UNAVAILABLE: 503,
  LEASE_HELD: 409,
  LEASE_LOST: 409,
  CHAIN_BROKEN: 500,
  INTERNAL: 500,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown>; requestId?: string };
}

/**
 * Maps any thrown value to a status and body. 5xx bodies are generic and carry only the request id, so upstream
 * messages never leak; 4xx bodies say what to fix.
 */
export function toErrorResponse(err: unknown, requestId?: string): { statusCode: number; body: ErrorBody } {
  if (isAppError(err)) {
    const statusCode = httpStatusByCode[err.code];
    if (statusCode < 500) {
      const details = Object.keys(err.details).length ? { ...err.details } : undefined;
      return { statusCode, body: { error: { code: err.code, message: err.message, details, requestId } } };
    }
    return {
      statusCode,
      body: { error: { code: err.code, message: genericMessage(statusCode), requestId } },
    };
  }
  return { statusCode: 500, body: { error: { code: 'INTERNAL', message: genericMessage(500), requestId } } };
}

function genericMessage(status: number): string {
  return status === 503
    ? 'A dependency is unavailable; retry later. Quote the request id when reporting.'
    : 'Internal error. Quote the request id when reporting.';
}
