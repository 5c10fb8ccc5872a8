/**
 * Escrow: each generation's material is wrapped (Key Protect wrap) under the group's escrow root key with AAD naming
 * the group and the generation. Plain material lives only inside {@link withEscrowedMaterial}'s callback and is
 * zeroed afterwards.
 */
import { AppError, type EscrowKeyRef, fingerprintOf, type GroupId, KeyMaterial, type Random } from '../core/index.js';
import type { CallOptions, KeyProtectPort, KeyRef } from './ports.js';

/** Size of the material lockstep generates (AES-256). */
export const MATERIAL_BYTES = 32;

/** AAD of a generation's escrow ciphertext: unwrapping it under another group or generation fails. */
export function escrowAad(groupId: GroupId, generation: number): string[] {
  return ['lockstep-escrow/v1', `group:${groupId}`, `generation:${generation}`];
}

export function escrowRef(e: EscrowKeyRef): KeyRef {
  return { region: e.region, instanceId: e.instanceId, keyId: e.keyId };
}

export interface EscrowedMaterialRecord {
  keyCrn: EscrowKeyRef['crn'];
  ciphertext: string;
  aad: string[];
  fingerprint: string;
}

/** Generates fresh material, fingerprints it and wraps it under the escrow key; the material is zeroed before return. */
export async function generateAndEscrow(
  ...args: Parameters<typeof generateAndEscrowKeeping>
): Promise<EscrowedMaterialRecord> {
  const { record, material } = await generateAndEscrowKeeping(...args);
  material.zero();
  return record;
}

/**
 * Like `generateAndEscrow`, and hands the material to the caller, who zeroes it (a worker keeps it for the steps of
 * the same pass, after the escrow record is persisted, instead of unwrapping the escrow again).
 */
export async function generateAndEscrowKeeping(
  kp: KeyProtectPort,
  random: Random,
  escrow: EscrowKeyRef,
  groupId: GroupId,
  generation: number,
  opts?: CallOptions,
): Promise<{ record: EscrowedMaterialRecord; material: KeyMaterial }> {
  const raw = random.bytes(MATERIAL_BYTES);
  const material = KeyMaterial.fromBytes(raw);
  raw.fill(0);
  try {
    const fingerprint = fingerprintOf(material);
    const aad = escrowAad(groupId, generation);
    const wrapped = await material.use((bytes) => kp.wrap(escrowRef(escrow), bytes, aad, opts));
    return { record: { keyCrn: escrow.crn, ciphertext: wrapped.ciphertext, aad, fingerprint }, material };
  } catch (err) {
    material.zero();
    throw err;
  }
}

/** Escrowed material being unwrapped: `material` settles when the unwrap returns; `close()` zeroes it. */
export interface OpenedMaterial {
  readonly material: Promise<KeyMaterial>;
  /** Zeroes the material (now, or as soon as the unwrap returns); it cannot be used afterwards. */
  close(): void;
}

/**
 * Starts unwrapping an escrowed material and checks its fingerprint, without waiting: callers overlap the unwrap
 * with round trips that do not need the material (import tokens, re-checks). Always `close()` it.
 * `material` rejects with MATERIAL_MISMATCH when the unwrapped material does not have the recorded fingerprint.
 */
export function openEscrowedMaterial(
  kp: KeyProtectPort,
  escrow: EscrowKeyRef,
  record: EscrowedMaterialRecord,
  opts?: CallOptions,
): OpenedMaterial {
  let closed = false;
  let held: KeyMaterial | undefined;
  const material = (async () => {
    const out = await kp.unwrap(escrowRef(escrow), record.ciphertext, record.aad, opts);
    let m: KeyMaterial;
    try {
      m = KeyMaterial.fromBytes(out.plaintext);
    } finally {
      out.plaintext.fill(0);
    }
    if (closed || fingerprintOf(m) !== record.fingerprint) {
      m.zero();
      if (closed) throw new Error('escrowed material was closed before its unwrap returned');
      throw new AppError(
        'MATERIAL_MISMATCH',
        'Escrowed material does not match the fingerprint recorded with the run',
        {
          details: { expected: record.fingerprint },
        },
      );
    }
    held = m;
    return m;
  })();
  material.catch(() => undefined); // observed here; every user awaits it and sees the rejection
  return {
    material,
    close() {
      closed = true;
      held?.zero();
    },
  };
}

/**
 * Unwraps an escrowed material, checks its fingerprint, runs `fn` with it and zeroes it whatever happens.
 * @throws {AppError} MATERIAL_MISMATCH when the unwrapped material does not have the recorded fingerprint
 */
export async function withEscrowedMaterial<T>(
  kp: KeyProtectPort,
  escrow: EscrowKeyRef,
  record: EscrowedMaterialRecord,
  fn: (material: KeyMaterial) => Promise<T>,
  opts?: CallOptions,
): Promise<T> {
  const opened = openEscrowedMaterial(kp, escrow, record, opts);
  try {
    return await fn(await opened.material);
  } finally {
    opened.close();
  }
}
