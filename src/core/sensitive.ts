import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from './errors.js';

const REDACTED = '[REDACTED]';
const inspectSymbol = Symbol.for('nodejs.util.inspect.custom');

/**
 * A secret value (token, nonce, password) that never prints: `String()`, `JSON.stringify()` and `util.inspect()`
 * all give `[REDACTED]`. Read it only with `reveal()`, at the last moment.
 */
export class Sensitive<T> {
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
  }
  reveal(): T {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspectSymbol](): string {
    return REDACTED;
  }
}

/** Root key sizes Key Protect accepts for imported material (bytes). */
export const MATERIAL_SIZES = [16, 24, 32] as const;

/**
 * Root key material. Holds its own copy of the bytes, prints `[REDACTED]` everywhere, and is zeroed with
 * `zero()` after use; any use after that throws. Never persisted, logged or returned.
 */
export class KeyMaterial {
  #bytes: Buffer;
  #zeroed = false;

  private constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  /** Copies `bytes` (16, 24 or 32 of them) into a new material; the caller should zero its own copy. @throws {AppError} VALIDATION_FAILED */
  static fromBytes(bytes: Uint8Array): KeyMaterial {
    if (!(MATERIAL_SIZES as readonly number[]).includes(bytes.length)) {
      throw new AppError('VALIDATION_FAILED', `Key material must be 16, 24 or 32 bytes, got ${bytes.length}`);
    }
    return new KeyMaterial(Buffer.from(bytes));
  }

  get length(): number {
    return this.#bytes.length;
  }

  get isZeroed(): boolean {
    return this.#zeroed;
  }

  /** Runs `fn` with the raw bytes. `fn` must not keep or copy them beyond the call. */
  use<T>(fn: (bytes: Buffer) => T): T {
    if (this.#zeroed) throw new AppError('INTERNAL', 'Key material was used after it was zeroed');
    return fn(this.#bytes);
  }

  /** Constant-time equality with another material. */
  equals(other: KeyMaterial): boolean {
    return this.use((a) => other.use((b) => a.length === b.length && timingSafeEqual(a, b)));
  }

  /** Overwrites the bytes with zeros. Idempotent. */
  zero(): void {
    this.#bytes.fill(0);
    this.#zeroed = true;
  }

  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspectSymbol](): string {
    return REDACTED;
  }
}

/** Label of the fingerprint derivation; changing it changes every fingerprint. */
export const FINGERPRINT_LABEL = 'lockstep/material-fingerprint/v1';

/**
 * Public identifier of a material: `fp1:` + hex of the first 16 bytes of HMAC-SHA256(key = material, label).
 * Reveals nothing about the material (it is keyed by it) and is not a plain hash of it.
 */
export function fingerprintOf(material: KeyMaterial): string {
  return material.use(
    (k) => `fp1:${createHmac('sha256', k).update(FINGERPRINT_LABEL).digest().subarray(0, 16).toString('hex')}`,
  );
}
