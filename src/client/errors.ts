import type { AttemptFailure } from './types.js';

/** Codes of {@link KeyringError}. */
export const KeyringErrorCode = {
  /** Every member asked was unavailable (connection, timeout, 5xx, 429, member state). */
  UNAVAILABLE: 'UNAVAILABLE',
  /** Key Protect refused the ciphertext, AAD or request (400/422): no member will accept it. */
  REJECTED: 'REJECTED',
  /** The caller has no access (401/403). */
  DENIED: 'DENIED',
  /** The call's deadline passed before any member answered. */
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  /** The caller's signal aborted the call. */
  ABORTED: 'ABORTED',
  /** Bad options or arguments. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The lockstep API could not be read and no last known descriptor exists. */
  DESCRIPTOR_UNAVAILABLE: 'DESCRIPTOR_UNAVAILABLE',
} as const;
export type KeyringErrorCode = (typeof KeyringErrorCode)[keyof typeof KeyringErrorCode];

/** The one error type of the failover client; `attempts` lists what each member answered. */
export class KeyringError extends Error {
  readonly code: KeyringErrorCode;
  readonly attempts: AttemptFailure[];

  constructor(code: KeyringErrorCode, message: string, attempts: AttemptFailure[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = 'KeyringError';
    this.code = code;
    this.attempts = attempts;
  }
}

/** Whether `err` is a {@link KeyringError} (by code, so bundled copies also match). */
export function isKeyringError(err: unknown): err is KeyringError {
  return (
    typeof err === 'object' &&
    err !== null &&
    (err as { name?: unknown }).name === 'KeyringError' &&
    typeof (err as { code?: unknown }).code === 'string'
  );
}
