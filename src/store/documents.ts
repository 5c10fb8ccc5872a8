/**
 * How domain values become Cloudant documents. Every document is an envelope:
 *
 *   { _id, _rev, kind, writeId, ...indexFields, data }
 *
 * `data` is the domain value exactly as given (after a JSON round trip); index fields are top-level copies that the
 * Mango indexes read; `writeId` is a fresh random id per write, so that after an ambiguous failure (a timeout, or a
 * retried request answered 409) the writer can tell its own write from someone else's.
 */
import { randomUUID } from 'node:crypto';
import { AppError, isSecretKey, KeyMaterial, Sensitive } from '../core/index.js';

/** Cloudant's document limit is 1 MB; stay just under it so the envelope and `_rev` always fit. */
export const MAX_DOCUMENT_BYTES = 1_000_000;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Envelope<T = unknown> {
  _id: string;
  _rev?: string;
  kind: string;
  writeId: string;
  data: T;
  [indexField: string]: unknown;
}

/** A document id that is safe for Cloudant: no leading underscore, printable ASCII, bounded. */
const DOC_ID = /^[A-Za-z0-9][A-Za-z0-9:._@-]{0,480}$/;

export function checkDocId(id: string): string {
  if (!DOC_ID.test(id)) {
    throw new AppError('VALIDATION_FAILED', 'Invalid document id: use letters, digits and : . _ @ - (max 480)', {
      details: { field: '_id', received: id.slice(0, 80) },
    });
  }
  return id;
}

/**
 * Rejects anything that must never be stored: key material, `Sensitive` values, raw bytes, or a property whose name
 * looks secret (`payload`, `token`, `nonce`, `apikey`, …, see core/redact.ts) holding a value.
 * @throws {AppError} VALIDATION_FAILED naming the offending path
 */
export function assertNoSecrets(value: unknown, path = '$', depth = 0): void {
  if (depth > 64) throw new AppError('VALIDATION_FAILED', `Document nests too deeply at ${path}`);
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new AppError('VALIDATION_FAILED', `Non-finite number at ${path}: store finite numbers only`, {
        details: { field: path },
      });
    }
    return;
  }
  if (value instanceof KeyMaterial || value instanceof Sensitive || value instanceof Uint8Array) {
    throw new AppError('VALIDATION_FAILED', `Refusing to store secret or binary value at ${path}`, {
      details: { field: path },
    });
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      assertNoSecrets(v, `${path}[${i}]`, depth + 1);
    });
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (isSecretKey(k) && v !== undefined && v !== null) {
      throw new AppError('VALIDATION_FAILED', `Refusing to store a secret-looking field ${path}.${k}`, {
        details: { field: `${path}.${k}` },
      });
    }
    assertNoSecrets(v, `${path}.${k}`, depth + 1);
  }
}

/** Builds an envelope; validates id, secrets and size. @throws {AppError} VALIDATION_FAILED, PAYLOAD_TOO_LARGE */
export function encode<T>(
  kind: string,
  id: string,
  data: T,
  indexFields: Record<string, unknown> = {},
  rev?: string,
): Envelope<T> {
  checkDocId(id);
  assertNoSecrets(data);
  const doc: Envelope<T> = {
    _id: id,
    ...(rev === undefined ? {} : { _rev: rev }),
    kind,
    writeId: randomUUID(),
    ...Object.fromEntries(Object.entries(indexFields).filter(([, v]) => v !== undefined)),
    data: JSON.parse(JSON.stringify(data)) as T,
  };
  const bytes = Buffer.byteLength(JSON.stringify(doc));
  if (bytes > MAX_DOCUMENT_BYTES) {
    throw new AppError(
      'PAYLOAD_TOO_LARGE',
      `${kind} document ${id} is ${bytes} bytes; the limit is ${MAX_DOCUMENT_BYTES}`,
      {
        details: { docId: id, bytes, limitBytes: MAX_DOCUMENT_BYTES },
      },
    );
  }
  return doc;
}

/** Opaque page cursor: base64url JSON. @throws {AppError} INVALID_CURSOR */
export function decodeCursor<T extends object>(cursor: string, check: (v: unknown) => v is T): T {
  try {
    if (cursor.length > 1000) throw new Error('too long');
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (check(v)) return v;
  } catch {
    // fall through
  }
  throw new AppError('INVALID_CURSOR', 'The cursor is not one this API issued; start again without a cursor', {
    details: { field: 'cursor' },
  });
}

export const encodeCursor = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Validates a page size. @throws {AppError} VALIDATION_FAILED */
export function checkLimit(limit: number, max = 1000): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new AppError('VALIDATION_FAILED', `limit must be an integer from 1 to ${max}`, {
      details: { field: 'limit', received: String(limit) },
    });
  }
  return limit;
}

/** Validates a time or counter. @throws {AppError} VALIDATION_FAILED */
export function checkInt(field: string, v: unknown, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new AppError('VALIDATION_FAILED', `${field} must be an integer >= ${min}`, {
      details: { field, received: String(v).slice(0, 40) },
    });
  }
  return v;
}

export function checkString(field: string, v: unknown, max = 200, min = 1): string {
  if (typeof v !== 'string' || v.length < min || v.length > max) {
    throw new AppError('VALIDATION_FAILED', `${field} must be a string of ${min}-${max} characters`, {
      details: { field },
    });
  }
  return v;
}

/** Zero-padded generation for ids that sort in order. */
export const padGeneration = (n: number): string => String(n).padStart(10, '0');
