/**
 * A deliberately sequential rotation, written only for the benchmark: the same Key Protect steps as lockstep's
 * stage-verify-promote-prove protocol, one call at a time, one member at a time, no parallelism. It persists a
 * progress document after each step (as the saga does) but takes no leases, keeps no lineage and handles no
 * failure: it is the "naive" implementation the real one is compared with, not a usable rotation.
 */
import { createHash } from 'node:crypto';
import type { KeyProtectPort, KeyRef, Stores } from '../../src/app/index.js';
import { cryptoRandom } from '../../src/app/index.js';
import { fingerprintOf, type Group, KeyMaterial, type RunId } from '../../src/core/index.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export interface SequentialResult {
  ok: boolean;
  problems: string[];
}

/** Rotates `group` (generation `generation`) step by step; returns whether every canary matched. */
export async function sequentialRotation(
  kp: KeyProtectPort,
  stores: Stores,
  group: Group,
  generation: number,
): Promise<SequentialResult> {
  const problems: string[] = [];
  const members = group.members;
  const primary = members.find((m) => m.role === 'primary')!;
  const dups = members.filter((m) => m.role === 'duplicate');
  const ref = (m: (typeof members)[number]): KeyRef => ({ region: m.region, instanceId: m.instanceId, keyId: m.keyId });
  const escrowRef: KeyRef = {
    region: group.escrow.region,
    instanceId: group.escrow.instanceId,
    keyId: group.escrow.keyId,
  };
  const runId = `run-seq-${group.id}-g${generation}-${cryptoRandom.uuid().slice(0, 8)}` as RunId;
  const base = { id: runId, groupId: group.id, generation, kind: 'bench-sequential', createdAtMs: Date.now() };
  let saved = await stores.runs.create({ ...base, status: 'running', updatedAtMs: Date.now() });
  const persist = async (step: string, status: 'running' | 'completed' = 'running') => {
    saved = await stores.runs.save({ ...base, status, updatedAtMs: Date.now(), step } as never, saved.rev);
  };

  // plan: read every member, one after another
  const snapshot = new Map<string, string>();
  for (const m of members) {
    await kp.getKey(ref(m));
    const versions = await kp.listVersions(ref(m));
    snapshot.set(m.crn, versions[0]?.id ?? '');
  }
  await persist('plan');

  // generate + escrow
  const aad = ['lockstep-escrow/v1', `group:${group.id}`, `generation:${generation}`];
  const raw = cryptoRandom.bytes(32);
  const fresh = KeyMaterial.fromBytes(raw);
  raw.fill(0);
  const fingerprint = fingerprintOf(fresh);
  const escrow = await fresh.use((b) => kp.wrap(escrowRef, b, aad));
  fresh.zero();
  await persist('escrow');

  const withMaterial = async (fn: (m: KeyMaterial) => Promise<void>) => {
    const out = await kp.unwrap(escrowRef, escrow.ciphertext, aad);
    const material = KeyMaterial.fromBytes(out.plaintext);
    out.plaintext.fill(0);
    try {
      if (fingerprintOf(material) !== fingerprint) throw new Error('escrow fingerprint mismatch');
      await fn(material);
    } finally {
      material.zero();
    }
  };
  const stageOne = async (m: (typeof members)[number]) => {
    await withMaterial(async (material) => {
      await kp.listVersions(ref(m)); // re-check before rotate
      await kp.rotateWithMaterial(ref(m), material); // import token create → get → seal → rotate
      const after = await kp.listVersions(ref(m)); // read the new version back
      if (after[0]?.id === snapshot.get(m.crn)) problems.push(`${m.crn}: no new version`);
    });
  };

  // stage: one duplicate at a time
  for (const d of dups) {
    await stageOne(d);
    await persist(`staged ${d.crn}`);
  }

  // verify: wrap at the first duplicate, unwrap at each other one
  const canaryAad = ['lockstep-canary/v1', `group:${group.id}`, `generation:${generation}`];
  const canary = async (at: (typeof members)[number], targets: Array<(typeof members)[number]>) => {
    const dek = cryptoRandom.bytes(32);
    const want = sha(dek);
    const w = await kp.wrap(ref(at), dek, canaryAad);
    dek.fill(0);
    for (const t of targets) {
      const u = await kp.unwrap(ref(t), w.ciphertext, canaryAad);
      if (sha(u.plaintext) !== want) problems.push(`${t.crn} unwrapped a different DEK`);
      u.plaintext.fill(0);
    }
  };
  await canary(dups[0]!, dups.length > 1 ? dups.slice(1) : [dups[0]!]);
  await persist('verify');

  // promote
  await stageOne(primary);
  await persist('promote');

  // prove: primary → every duplicate, then each duplicate → primary
  await canary(primary, dups);
  for (const d of dups) await canary(d, [primary]);
  await persist('prove', 'completed');
  return { ok: problems.length === 0, problems };
}
