/**
 * Canaries: a random DEK wrapped at one member and unwrapped at others. Equal plaintexts prove the members hold the
 * same material; the version each member reports proves *which* of its versions holds it. The DEK is dropped; only
 * its SHA-256 and the ciphertext are kept as evidence.
 */
import { createHash } from 'node:crypto';
import { type CanaryEvidence, hasCode, type KeyCrn, type Random } from '../core/index.js';
import type { CallOptions, KeyProtectPort, KeyRef } from './ports.js';

export interface CanaryParty {
  ref: KeyRef;
  crn: KeyCrn;
  /** The version this member must report (wrap: the version that wraps; unwrap: the version holding the material). */
  expectedVersionId?: string;
}

export interface CanaryResult {
  evidence: CanaryEvidence;
  /** Why the canary failed (empty when ok). */
  problems: string[];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Wraps a fresh 32-byte DEK at `wrapAt` and unwraps it at each of `unwrapAt`. A `MATERIAL_MISMATCH` from an unwrap
 * is a failed canary (reported in `problems`); any other error propagates (the step is retried).
 */
export async function runCanary(
  kp: KeyProtectPort,
  random: Random,
  nowMs: () => number,
  wrapAt: CanaryParty,
  unwrapAt: CanaryParty[],
  aad: string[],
  opts?: CallOptions,
): Promise<CanaryResult> {
  const wrapped = await wrapCanary(kp, random, nowMs, wrapAt.ref, wrapAt.crn, aad, opts);
  return crossCanary(kp, nowMs, wrapped, wrapAt, unwrapAt.length > 0 ? unwrapAt : [wrapAt], opts);
}

/**
 * The wrapping half of a canary: a fresh 32-byte DEK wrapped at `at` (dropped at once). The evidence names the
 * version that answered (`reportedVersions`), so a wrap right after a rotate is also its read-back; its ciphertext
 * is unwrapped elsewhere later by `crossCanary`.
 */
export async function wrapCanary(
  kp: KeyProtectPort,
  random: Random,
  nowMs: () => number,
  at: KeyRef,
  crn: KeyCrn,
  aad: string[],
  opts?: CallOptions,
): Promise<CanaryEvidence> {
  const dek = random.bytes(32);
  try {
    const plaintextSha256 = sha256(dek);
    const wrapped = await kp.wrap(at, dek, aad, opts);
    return {
      wrappedAt: crn,
      unwrappedAt: [],
      ciphertext: wrapped.ciphertext,
      plaintextSha256,
      aad,
      reportedVersions: { [crn]: wrapped.keyVersionId },
      ok: true,
      atMs: nowMs(),
    };
  } finally {
    dek.fill(0);
  }
}

/**
 * The unwrapping half: `wrapped` (from `wrapCanary` at `wrapAt`) unwrapped at each of `unwrapAt` in parallel, then
 * judged in target order (deterministic evidence). Every party's reported version is checked against its expected
 * one. With no target the wrap alone is the evidence (one member: nothing to cross).
 */
export async function crossCanary(
  kp: KeyProtectPort,
  nowMs: () => number,
  wrapped: CanaryEvidence,
  wrapAt: CanaryParty,
  unwrapAt: CanaryParty[],
  opts?: CallOptions,
): Promise<CanaryResult> {
  const problems: string[] = [];
  const reportedVersions: Record<string, string> = { ...wrapped.reportedVersions };
  const wrappedWith = reportedVersions[wrapAt.crn];
  if (wrapAt.expectedVersionId && wrappedWith !== wrapAt.expectedVersionId) {
    problems.push(`${wrapAt.crn} wrapped with version ${wrappedWith}, expected ${wrapAt.expectedVersionId}`);
  }
  const results = await Promise.allSettled(
    unwrapAt.map((t) => kp.unwrap(t.ref, wrapped.ciphertext, wrapped.aad, opts)),
  );
  let failure: unknown;
  results.forEach((r, i) => {
    const t = unwrapAt[i] as CanaryParty;
    if (r.status === 'rejected') {
      if (hasCode(r.reason, 'MATERIAL_MISMATCH')) problems.push(`${t.crn} cannot unwrap (does not hold the material)`);
      else failure ??= r.reason;
      return;
    }
    const out = r.value;
    const same = sha256(out.plaintext) === wrapped.plaintextSha256;
    out.plaintext.fill(0);
    reportedVersions[t.crn] = out.keyVersionId;
    if (!same) problems.push(`${t.crn} unwrapped a different DEK`);
    if (t.expectedVersionId && out.keyVersionId !== t.expectedVersionId) {
      problems.push(`${t.crn} reported version ${out.keyVersionId}, expected ${t.expectedVersionId}`);
    }
  });
  // Any error other than "does not hold the material" fails the step (it is retried), after every DEK is zeroed.
  if (failure !== undefined) throw failure;
  return {
    evidence: {
      wrappedAt: wrapped.wrappedAt,
      unwrappedAt: unwrapAt.map((t) => t.crn),
      ciphertext: wrapped.ciphertext,
      plaintextSha256: wrapped.plaintextSha256,
      aad: wrapped.aad,
      reportedVersions,
      ok: problems.length === 0,
      atMs: nowMs(),
    },
    problems,
  };
}

/**
 * Re-checks stored canary evidence at a member: unwrap its ciphertext and compare the SHA-256 of the result.
 * Returns the version the member reports, or `undefined` when it does not hold the material.
 */
export async function probeEvidence(
  kp: KeyProtectPort,
  at: KeyRef,
  evidence: Pick<CanaryEvidence, 'ciphertext' | 'aad' | 'plaintextSha256'>,
  opts?: CallOptions,
): Promise<{ holds: boolean; versionId?: string }> {
  try {
    const out = await kp.unwrap(at, evidence.ciphertext, evidence.aad, opts);
    const holds = sha256(out.plaintext) === evidence.plaintextSha256;
    out.plaintext.fill(0);
    return { holds, versionId: out.keyVersionId };
  } catch (err) {
    if (hasCode(err, 'MATERIAL_MISMATCH')) return { holds: false };
    throw err;
  }
}
