/**
 * ⚠ ANTI-PATTERN — written only for the DR-unreadable window scenario, never to be used for real keys. ⚠
 *
 * A deliberately naive "rotate everything" script, the kind an operator writes first: fresh material, secure-import
 * it into the **primary first**, then into each duplicate one after another (as a cron-driven shell loop would).
 * Key Protect makes new material current the moment a key rotates, so from the primary's rotation until the last
 * duplicate's, every DEK an application wraps at the primary is wrapped under material the lagging duplicates lack:
 * a DR failover in that window cannot unwrap it. lockstep exists to avoid exactly this (design.md: stage every
 * duplicate, verify, and promote the primary last).
 *
 * Everything else is real: the project's Key Protect client (`rotateWithMaterial`: import token create → get →
 * RSA-OAEP-SHA256 seal + AES-GCM nonce → rotate) over HTTP, with whatever latency the stack has. No lease, no
 * escrow, no verify, no lineage — which is also why it must not share instances with concurrent lockstep runs.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import type { Group } from '../../../src/core/index.js';
import { KeyMaterial } from '../../../src/core/index.js';

export interface NaiveRotationOptions {
  kp: KeyProtectPort;
  group: Group;
  /** Fixed pause between members (a sequential script's per-step overhead). Default 0. */
  pauseBetweenMembersMs?: number;
}

export interface NaiveRotationResult {
  /** `performance.now()` when each rotate call returned: the primary's, then each duplicate's in order. */
  primaryRotatedAtMs: number;
  duplicateRotatedAtMs: number[];
  /** How long some duplicate could not unwrap what the primary wraps: last duplicate done − primary done, ms. */
  windowMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The primary-first rotation (see the module comment for why it is wrong). */
export async function naivePrimaryFirstRotation(opts: NaiveRotationOptions): Promise<NaiveRotationResult> {
  const primary = opts.group.members.find((m) => m.role === 'primary');
  const duplicates = opts.group.members.filter((m) => m.role === 'duplicate');
  if (!primary) throw new Error('the group has no primary');
  const ref = (m: KeyRef): KeyRef => ({ region: m.region, instanceId: m.instanceId, keyId: m.keyId });
  const pauseMs = opts.pauseBetweenMembersMs ?? 0;
  const bytes = randomBytes(32);
  const material = KeyMaterial.fromBytes(bytes);
  bytes.fill(0);
  try {
    // WRONG ORDER, on purpose: the primary becomes current with material no duplicate holds yet.
    await opts.kp.rotateWithMaterial(ref(primary), material);
    const primaryRotatedAtMs = performance.now();
    const duplicateRotatedAtMs: number[] = [];
    for (const d of duplicates) {
      if (pauseMs > 0) await sleep(pauseMs);
      await opts.kp.rotateWithMaterial(ref(d), material);
      duplicateRotatedAtMs.push(performance.now());
    }
    const last = duplicateRotatedAtMs.at(-1) ?? primaryRotatedAtMs;
    return { primaryRotatedAtMs, duplicateRotatedAtMs, windowMs: last - primaryRotatedAtMs };
  } finally {
    material.zero();
  }
}
