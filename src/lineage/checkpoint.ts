import { sign, verify } from 'node:crypto';
import { AppError, asGroupId, type Checkpoint, type GroupId } from '../core/index.js';
import { canonicalJson } from './canonicalJson.js';
import {
  type CheckpointKeyring,
  checkpointKeyId,
  type KeyInput,
  loadCheckpointPrivateKey,
  loadCheckpointPublicKey,
} from './keys.js';

/** The statement a checkpoint signs: a chain head at a point in time. */
export interface CheckpointStatement {
  groupId: GroupId;
  generation: number;
  headHash: string;
  signedAtMs: number;
}

/** The key that signs checkpoints. `keyId`, if given, must be the id of this key (a guard against mix-ups). */
export interface CheckpointSigner {
  privateKey: KeyInput;
  keyId?: string;
}

/** Outcome of checking one checkpoint's signature. */
export type CheckpointSignatureStatus = 'valid' | 'bad-signature' | 'unknown-key';

const HASH_RE = /^[0-9a-f]{64}$/;
const MAX_DATE_MS = 8.64e15;

/** The exact bytes a checkpoint signature covers: canonical JSON of every field except `signature`. */
function signedBytes(cp: Omit<Checkpoint, 'signature'>): Buffer {
  const { groupId, generation, headHash, signedAtMs, keyId, algorithm } = cp;
  return Buffer.from(canonicalJson({ algorithm, generation, groupId, headHash, keyId, signedAtMs }), 'utf8');
}

/**
 * Signs a chain head with Ed25519 (deterministic: the same statement and key always give the same signature).
 *
 * @param statement - the group, the head generation and its record hash, and when it is signed (`signedAtMs` comes
 *   from the caller's clock).
 * @param signer - the private key (KeyObject, PEM, or base64 PKCS#8) and optionally its expected id.
 * @returns a {@link Checkpoint} whose `signature` (base64) covers the canonical JSON of all its other fields.
 * @throws {AppError} VALIDATION_FAILED when the statement is malformed or `signer.keyId` is not the key's id.
 * @throws {AppError} CONFIG_INVALID when the key is not an Ed25519 private key.
 */
export function signCheckpoint(statement: CheckpointStatement, signer: CheckpointSigner): Checkpoint {
  asGroupId(statement.groupId);
  if (!Number.isSafeInteger(statement.generation) || statement.generation < 1) {
    throw new AppError('VALIDATION_FAILED', 'Checkpoint generation must be an integer >= 1');
  }
  if (!HASH_RE.test(statement.headHash)) {
    throw new AppError('VALIDATION_FAILED', 'Checkpoint headHash must be 64 lower-case hex digits (a record hash)');
  }
  if (!Number.isSafeInteger(statement.signedAtMs) || statement.signedAtMs < 0 || statement.signedAtMs > MAX_DATE_MS) {
    throw new AppError('VALIDATION_FAILED', 'Checkpoint signedAtMs must be epoch milliseconds');
  }
  const key = loadCheckpointPrivateKey(signer.privateKey);
  const keyId = checkpointKeyId(key);
  if (signer.keyId !== undefined && signer.keyId !== keyId) {
    throw new AppError(
      'VALIDATION_FAILED',
      `Checkpoint keyId ${signer.keyId} does not belong to this key (its id is ${keyId})`,
    );
  }
  const unsigned: Omit<Checkpoint, 'signature'> = {
    groupId: statement.groupId,
    generation: statement.generation,
    headHash: statement.headHash,
    signedAtMs: statement.signedAtMs,
    keyId,
    algorithm: 'Ed25519',
  };
  return { ...unsigned, signature: sign(null, signedBytes(unsigned), key).toString('base64') };
}

/**
 * Checks a checkpoint's signature against trusted public keys. Never throws for a bad checkpoint: a malformed one
 * is reported as `bad-signature`.
 *
 * @param cp - the checkpoint as stored.
 * @param publicKeys - trusted keys by id (see `checkpointKeyring`).
 * @returns `unknown-key` when `cp.keyId` is not trusted (e.g. re-signed with another key), `bad-signature` when the
 *   signature does not cover these exact fields (tampered), `valid` otherwise.
 * @throws {AppError} CONFIG_INVALID when the trusted key for `cp.keyId` is not an Ed25519 key.
 */
export function verifyCheckpoint(cp: Checkpoint, publicKeys: CheckpointKeyring): CheckpointSignatureStatus {
  if (!Object.hasOwn(publicKeys, cp.keyId)) return 'unknown-key';
  const key = loadCheckpointPublicKey(publicKeys[cp.keyId] as KeyInput);
  if (cp.algorithm !== 'Ed25519' || typeof cp.signature !== 'string') return 'bad-signature';
  try {
    return verify(null, signedBytes(cp), key, Buffer.from(cp.signature, 'base64')) ? 'valid' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}
