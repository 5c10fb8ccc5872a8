import type { InstanceId, KeyCrn, KeyId, LineageRecord, MemberRole, RegionId } from '../core/index.js';
import { sha256Hex } from './record.js';

/** One unwrap to perform for a live attestation: unwrap `ciphertext` (with `aad`) at the member. */
export interface AttestationUnwrap {
  /** Stable id to match the result: `<generation>:<canaryIndex>:<crn>`. */
  id: string;
  crn: KeyCrn;
  role: MemberRole;
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
  /** Index of the canary in `record.verification`. */
  canaryIndex: number;
  ciphertext: string;
  aad: string[];
  /** The version this member recorded for the generation; an unwrap should report it. */
  expectedKeyVersionId: string;
}

/** Options for {@link planAttestation}. */
export interface AttestationOptions {
  /** Unwrap every passing canary at every member instead of one per member (more calls, same verdicts). */
  allCanaries?: boolean;
}

/**
 * What the member answered. Give `plaintext` (the unwrapped bytes; hashed here and not kept) or its `plaintextSha256`,
 * plus the key version Key Protect reported, if any. Give `error` when the member could not unwrap the ciphertext
 * at all (it does not hold the material). Transient failures (timeouts, 5xx) should be retried by the caller rather
 * than reported here, or the member is judged `missing`.
 */
export type AttestationResult =
  | { id: string; plaintext: Uint8Array; keyVersionId?: string }
  | { id: string; plaintextSha256: string; keyVersionId?: string }
  | { id: string; error: string };

/** Verdict for one member. */
export interface MemberAttestation {
  crn: KeyCrn;
  region: RegionId;
  role: MemberRole;
  /** `ok`: every planned unwrap gave the canary back; `mismatch`: an unwrap gave other bytes or another version; `missing`: no unwrap succeeded or none was possible. */
  status: 'ok' | 'missing' | 'mismatch';
  /** Unwraps planned for this member. */
  checked: number;
  reason: string;
}

/** Verdict for a generation. */
export interface AttestationReport {
  groupId: string;
  generation: number;
  ok: boolean;
  members: MemberAttestation[];
}

/**
 * Plans a live attestation of a recorded generation: which canary ciphertexts to unwrap at which member. Proves today
 * that every member still holds the generation's material. Only canaries that passed when recorded are used. By
 * default each member unwraps one canary, preferring one wrapped at another member (so the unwrap crosses instances).
 */
export function planAttestation(record: LineageRecord, options: AttestationOptions = {}): AttestationUnwrap[] {
  const usable = record.verification.map((c, i) => ({ c, i })).filter(({ c }) => c.ok);
  const plan: AttestationUnwrap[] = [];
  for (const m of record.members) {
    let picks = usable;
    if (!options.allCanaries) {
      const cross = usable.find(({ c }) => c.wrappedAt !== m.crn) ?? usable[0];
      picks = cross === undefined ? [] : [cross];
    }
    for (const { c, i } of picks) {
      plan.push({
        id: `${record.generation}:${i}:${m.crn}`,
        crn: m.crn,
        role: m.role,
        region: m.region,
        instanceId: m.instanceId,
        keyId: m.keyId,
        canaryIndex: i,
        ciphertext: c.ciphertext,
        aad: [...c.aad],
        expectedKeyVersionId: m.keyVersionId,
      });
    }
  }
  return plan;
}

// Canary hashes are public evidence, so a plain comparison is fine (no timing concern).
const sameHex = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/**
 * Judges the results of the unwraps planned by {@link planAttestation} (same `options`): per member `ok`, `missing`
 * or `mismatch`, comparing SHA-256 of each unwrapped plaintext with the canary's recorded `plaintextSha256` and the
 * reported key version with the member's recorded version. Results for unknown ids are ignored.
 */
export function judgeAttestation(
  record: LineageRecord,
  results: readonly AttestationResult[],
  options: AttestationOptions = {},
): AttestationReport {
  const plan = planAttestation(record, options);
  const byId = new Map(results.map((r) => [r.id, r]));
  const members = record.members.map((m): MemberAttestation => {
    const mine = plan.filter((u) => u.crn === m.crn);
    const base = { crn: m.crn, region: m.region, role: m.role, checked: mine.length };
    if (mine.length === 0) {
      return { ...base, status: 'missing', reason: 'The record has no passing canary to unwrap; cannot attest' };
    }
    const problems: string[] = [];
    let missing = 0;
    for (const u of mine) {
      const r = byId.get(u.id);
      if (r === undefined) {
        missing++;
        problems.push(`canary ${u.canaryIndex}: no unwrap result`);
      } else if ('error' in r) {
        missing++;
        problems.push(`canary ${u.canaryIndex}: unwrap failed (${r.error})`);
      } else {
        const canary = record.verification[u.canaryIndex]!;
        const got = 'plaintext' in r ? sha256Hex(r.plaintext) : r.plaintextSha256;
        if (!sameHex(got, canary.plaintextSha256)) {
          problems.push(
            `canary ${u.canaryIndex}: unwrapped bytes differ from the recorded canary (different material)`,
          );
        } else if (r.keyVersionId !== undefined && r.keyVersionId !== u.expectedKeyVersionId) {
          problems.push(
            `canary ${u.canaryIndex}: unwrapped by version ${r.keyVersionId}, but generation ${record.generation} is recorded as version ${u.expectedKeyVersionId}`,
          );
        }
      }
    }
    if (problems.length === 0) {
      return { ...base, status: 'ok', reason: `Unwrapped ${mine.length} canary(ies) to the recorded plaintext` };
    }
    return { ...base, status: problems.length > missing ? 'mismatch' : 'missing', reason: problems.join('; ') };
  });
  return {
    groupId: record.groupId,
    generation: record.generation,
    ok: members.every((m) => m.status === 'ok'),
    members,
  };
}
