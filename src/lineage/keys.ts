import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { AppError } from '../core/index.js';
import { sha256Hex } from './record.js';

/** A key given as a `KeyObject` or as PEM text. */
export type KeyInput = KeyObject | string;

/** Trusted checkpoint public keys by key id (see {@link checkpointKeyId}). */
export type CheckpointKeyring = Readonly<Record<string, KeyInput>>;

/** An Ed25519 checkpoint signing key pair and its id. */
export interface CheckpointKeyPair {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

// PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): SEQUENCE{ v0, AlgorithmIdentifier{1.3.101.112}, OCTET STRING{ OCTET STRING(32) } }
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function badKey(message: string, cause?: unknown): never {
  throw new AppError('CONFIG_INVALID', message, { cause });
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    badKey(`${what} must be an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  }
  return key;
}

/** Decodes config text: PEM as is, otherwise base64 of PEM or of DER. */
function decodeConfig(text: string): { pem: string } | { der: Buffer } {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) return { pem: trimmed };
  const bytes = Buffer.from(trimmed, 'base64');
  const asText = bytes.toString('utf8');
  return asText.startsWith('-----BEGIN') ? { pem: asText } : { der: bytes };
}

/**
 * Reads an Ed25519 private key from configuration: PEM (PKCS#8), base64 of that PEM, or base64 of PKCS#8 DER.
 * Pure: parses text, no I/O.
 * @throws {AppError} CONFIG_INVALID when the text is not an Ed25519 private key.
 */
export function loadCheckpointPrivateKey(input: KeyInput): KeyObject {
  if (typeof input !== 'string') {
    if (input.type !== 'private') badKey('The checkpoint signing key must be a private key');
    return requireEd25519(input, 'The checkpoint signing key');
  }
  let key: KeyObject;
  try {
    const src = decodeConfig(input);
    key = 'pem' in src ? createPrivateKey(src.pem) : createPrivateKey({ key: src.der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    badKey('The checkpoint signing key is not a PEM or base64 PKCS#8 private key', err);
  }
  return requireEd25519(key, 'The checkpoint signing key');
}

/**
 * Reads an Ed25519 public key: a `KeyObject` (a private key gives its public half), PEM (SPKI), base64 of that PEM,
 * or base64 of SPKI DER.
 * @throws {AppError} CONFIG_INVALID when the input is not an Ed25519 key.
 */
export function loadCheckpointPublicKey(input: KeyInput): KeyObject {
  if (typeof input !== 'string') {
    return requireEd25519(input.type === 'private' ? createPublicKey(input) : input, 'A checkpoint public key');
  }
  let key: KeyObject;
  try {
    const src = decodeConfig(input);
    key = 'pem' in src ? createPublicKey(src.pem) : createPublicKey({ key: src.der, format: 'der', type: 'spki' });
  } catch (err) {
    badKey('A checkpoint public key is not a PEM or base64 SPKI public key', err);
  }
  return requireEd25519(key, 'A checkpoint public key');
}

/**
 * A stable id for a checkpoint key: the first 16 hex digits of SHA-256 over the public key's SPKI DER. The same
 * key always gets the same id; a private key gives the id of its public half.
 * @throws {AppError} CONFIG_INVALID when the input is not an Ed25519 key.
 */
export function checkpointKeyId(key: KeyInput): string {
  const der = loadCheckpointPublicKey(key).export({ format: 'der', type: 'spki' });
  return sha256Hex(der).slice(0, 16);
}

/**
 * Builds a {@link CheckpointKeyring} from a list of trusted public keys (ids derived with {@link checkpointKeyId}).
 * @throws {AppError} CONFIG_INVALID when an entry is not an Ed25519 key.
 */
export function checkpointKeyring(keys: readonly KeyInput[]): CheckpointKeyring {
  const ring: Record<string, KeyObject> = {};
  for (const k of keys) {
    const pub = loadCheckpointPublicKey(k);
    ring[checkpointKeyId(pub)] = pub;
  }
  return ring;
}

/**
 * Derives an Ed25519 checkpoint key pair from a 32-byte seed. Pure and deterministic: pass `random.bytes(32)` from
 * the injected Random port to make a new key (this module never reads randomness), or a fixed seed in tests.
 * Equivalent to `generateKeyPairSync('ed25519')` when the seed is random. Export the private key with
 * `privateKey.export({ format: 'pem', type: 'pkcs8' })` to keep it in configuration (as a secret).
 * @throws {AppError} VALIDATION_FAILED when the seed is not 32 bytes.
 */
export function checkpointKeyPairFromSeed(seed: Uint8Array): CheckpointKeyPair {
  if (seed.length !== 32) {
    throw new AppError('VALIDATION_FAILED', `An Ed25519 seed is 32 bytes, got ${seed.length}`);
  }
  const der = Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  const publicKey = createPublicKey(privateKey);
  return { keyId: checkpointKeyId(publicKey), privateKey, publicKey };
}
