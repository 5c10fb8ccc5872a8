import {
  type CipherGCMTypes,
  constants,
  createCipheriv,
  createPublicKey,
  type KeyObject,
  publicEncrypt,
} from 'node:crypto';
import type { KeyMaterial, Random } from '../../core/index.js';
import { AppError, Sensitive } from '../../core/index.js';

/** The only key-encryption algorithm Key Protect accepts for secure import (SHA-1 is HPCS only). */
export const ENCRYPTION_ALGORITHM = 'RSAES_OAEP_SHA_256' as const;
export type EncryptionAlgorithm = typeof ENCRYPTION_ALGORITHM;

/** Smallest import-token public key we seal for. Key Protect issues RSA-4096. */
export const MIN_RSA_MODULUS_BITS = 2048;
/** AES-GCM IV and import-token nonce length (bytes). */
export const GCM_IV_BYTES = 12;
export const NONCE_BYTES = 12;

/** What `GET /import_token` returns that sealing needs. Both values are base64, exactly as Key Protect sends them. */
export interface ImportTokenSecrets {
  /** base64 of a PEM `PUBLIC KEY` (SPKI) RSA public key. */
  payload: string;
  /** base64 of the 12-byte nonce. Secret: never log it. */
  nonce: Sensitive<string>;
}

export interface SealForImportOptions {
  token: ImportTokenSecrets;
  material: KeyMaterial;
  /** Source of the fresh GCM IV. The IV is never taken from the caller. */
  random: Random;
}

/**
 * The secure-import fields of a create or rotate body. Every value prints `[REDACTED]` until
 * {@link toWireFields} reveals it for the request body.
 */
export interface SealedImport {
  /** base64(RSA-OAEP-SHA256(token public key, material)). */
  payload: Sensitive<string>;
  /** base64(AES-GCM(key = material, iv).seal(nonce) ciphertext ‖ 16-byte tag). */
  encryptedNonce: Sensitive<string>;
  /** base64 of the fresh 12-byte IV. */
  iv: Sensitive<string>;
  encryptionAlgorithm: EncryptionAlgorithm;
}

/** The plain JSON fields sent to Key Protect. Build the request body from these and drop them. */
export interface SecureImportWireFields {
  payload: string;
  encryptedNonce: string;
  iv: string;
  encryptionAlgorithm: EncryptionAlgorithm;
}

/**
 * Seals key material for a Key Protect import token (key-protect-api.md §3.2):
 * `payload = base64(RSA-OAEP(pub, material, SHA-256, MGF1-SHA-256, label ""))`,
 * `encryptedNonce = base64(AES-GCM(material, iv).seal(nonce))` with a fresh 12-byte `iv` from `random`.
 *
 * Pure apart from `random`: no I/O, no clock. The material is read through `material.use` and not kept.
 *
 * @throws {AppError} VALIDATION_FAILED when the token's public key is not a base64 PEM SPKI RSA key of at least
 *   {@link MIN_RSA_MODULUS_BITS} bits, or the nonce is not base64 of exactly 12 bytes (`details.field` names which).
 * @example
 * const sealed = sealForImport({ token: { payload, nonce: new Sensitive(nonce) }, material, random });
 * const body = Buffer.from(JSON.stringify(toWireFields(sealed)));
 */
export function sealForImport(opts: SealForImportOptions): SealedImport {
  const publicKey = parseImportPublicKey(opts.token.payload);
  const nonce = decodeNonce(opts.token.nonce);
  const iv = opts.random.bytes(GCM_IV_BYTES);
  if (iv.length !== GCM_IV_BYTES) {
    throw new AppError('INTERNAL', `Random source returned ${iv.length} bytes for a ${GCM_IV_BYTES}-byte IV`);
  }
  try {
    return opts.material.use((key) => {
      const wrappedKey = publicEncrypt(
        { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        key,
      );
      const cipher = createCipheriv(`aes-${key.length * 8}-gcm` as CipherGCMTypes, key, iv);
      const sealedNonce = Buffer.concat([cipher.update(nonce), cipher.final(), cipher.getAuthTag()]);
      return {
        payload: new Sensitive(wrappedKey.toString('base64')),
        encryptedNonce: new Sensitive(sealedNonce.toString('base64')),
        iv: new Sensitive(iv.toString('base64')),
        encryptionAlgorithm: ENCRYPTION_ALGORITHM,
      };
    });
  } finally {
    nonce.fill(0);
  }
}

/** Reveals the sealed values for the request body — call it only while building that body. */
export function toWireFields(sealed: SealedImport): SecureImportWireFields {
  return {
    payload: sealed.payload.reveal(),
    encryptedNonce: sealed.encryptedNonce.reveal(),
    iv: sealed.iv.reveal(),
    encryptionAlgorithm: sealed.encryptionAlgorithm,
  };
}

/**
 * Parses an import token's `payload` (base64 of a PEM `PUBLIC KEY` block) into an RSA public key.
 * @throws {AppError} VALIDATION_FAILED (`details.field = 'token.payload'`, `details.reason`) otherwise
 */
export function parseImportPublicKey(payloadBase64: string): KeyObject {
  const pem = decodeBase64('token.payload', payloadBase64).toString('utf8');
  const match = /^\s*-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/.exec(pem);
  if (!match) {
    throw invalidToken('not_spki_pem', 'The import token payload is not a PEM "PUBLIC KEY" (SPKI) block');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw invalidToken('unparsable_key', 'The import token public key cannot be parsed', cause);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw invalidToken(
      'not_rsa',
      `The import token public key must be RSA, got ${key.asymmetricKeyType ?? 'unknown'}`,
      undefined,
      { keyType: key.asymmetricKeyType ?? 'unknown' },
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_MODULUS_BITS) {
    throw invalidToken(
      'rsa_too_small',
      `The import token RSA key has ${bits} bits; at least ${MIN_RSA_MODULUS_BITS} are required`,
      undefined,
      { modulusBits: bits },
    );
  }
  return key;
}

function decodeNonce(nonce: Sensitive<string>): Buffer {
  if (!(nonce instanceof Sensitive)) {
    throw new AppError('VALIDATION_FAILED', 'The import token nonce must be wrapped in Sensitive', {
      details: { field: 'token.nonce', reason: 'not_sensitive' },
    });
  }
  const bytes = decodeBase64('token.nonce', nonce.reveal());
  if (bytes.length !== NONCE_BYTES) {
    bytes.fill(0);
    throw new AppError(
      'VALIDATION_FAILED',
      `The import token nonce must be ${NONCE_BYTES} bytes, got ${bytes.length}`,
      {
        details: { field: 'token.nonce', reason: 'wrong_length', length: bytes.length },
      },
    );
  }
  return bytes;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (Buffer.from is lenient and silently drops bad characters). */
function decodeBase64(field: string, value: unknown): Buffer {
  if (typeof value !== 'string' || value.length === 0 || !BASE64.test(value)) {
    throw new AppError('VALIDATION_FAILED', `The import token ${field.replace('token.', '')} is not valid base64`, {
      details: { field, reason: 'bad_base64' },
    });
  }
  return Buffer.from(value, 'base64');
}

function invalidToken(
  reason: string,
  message: string,
  cause?: unknown,
  extra: Record<string, string | number> = {},
): AppError {
  return new AppError('VALIDATION_FAILED', message, {
    details: { field: 'token.payload', reason, ...extra },
    cause,
  });
}
