import type { Checkpoint, Group, LineageMember, LineageRecord } from '../core/index.js';
import { redact } from '../core/index.js';

/**
 * What the API returns for a group. Picked field by field so store bookkeeping (`_id`, `_rev`, types) never leaks.
 */
export function groupView(g: Group): Record<string, unknown> {
  return dropUndefined({
    id: g.id,
    name: g.name,
    description: g.description,
    status: g.status,
    statusReason: g.statusReason,
    currentGeneration: g.currentGeneration,
    lastRotatedAtMs: g.lastRotatedAtMs,
    nextDueAtMs: g.nextDueAtMs,
    activeRunId: g.activeRunId,
    createdAtMs: g.createdAtMs,
    updatedAtMs: g.updatedAtMs,
    schedule: g.schedule,
    members: g.members.map((m) => ({
      role: m.role,
      region: m.region,
      instanceId: m.instanceId,
      keyId: m.keyId,
      crn: m.crn,
    })),
    escrowKey: { region: g.escrow.region, instanceId: g.escrow.instanceId, keyId: g.escrow.keyId, crn: g.escrow.crn },
    lastVerification: g.lastVerification && {
      atMs: g.lastVerification.atMs,
      trigger: g.lastVerification.trigger,
      result: g.lastVerification.result,
      problems: [...g.lastVerification.problems],
    },
    verificationRequestedAtMs: g.verificationRequestedAtMs,
    drillSchedule: g.drillSchedule,
    lastDrill: g.lastDrill,
    escrowedFromGeneration: g.escrowedFromGeneration,
  });
}

/**
 * The canonical lineage record as auditors read it: exactly the fields of {@link LineageRecord}, in a fixed order,
 * so the record's `hash` can be recomputed from what the API returns. Escrow ciphertexts are not part of a lineage
 * record and anything else a store might attach is dropped here.
 */
export function lineageView(r: LineageRecord): LineageRecord {
  return dropUndefined({
    groupId: r.groupId,
    generation: r.generation,
    fingerprint: r.fingerprint,
    trigger: dropUndefined({ kind: r.trigger.kind, by: r.trigger.by, reason: r.trigger.reason }),
    runId: r.runId,
    startedAtMs: r.startedAtMs,
    finishedAtMs: r.finishedAtMs,
    members: r.members.map(memberView),
    verification: r.verification.map((c) => ({
      wrappedAt: c.wrappedAt,
      unwrappedAt: [...c.unwrappedAt],
      ciphertext: c.ciphertext,
      plaintextSha256: c.plaintextSha256,
      aad: [...c.aad],
      reportedVersions: { ...c.reportedVersions },
      ok: c.ok,
      atMs: c.atMs,
    })),
    status: r.status,
    notes: r.notes === undefined ? undefined : [...r.notes],
    prevHash: r.prevHash,
    hash: r.hash,
  }) as LineageRecord;
}

function memberView(m: LineageMember): LineageMember {
  return {
    role: m.role,
    region: m.region,
    instanceId: m.instanceId,
    keyId: m.keyId,
    crn: m.crn,
    keyVersionId: m.keyVersionId,
    rotatedAtMs: m.rotatedAtMs,
    evidence: m.evidence.map(
      (e) =>
        dropUndefined({
          eventId: e.eventId,
          action: e.action,
          eventTimeMs: e.eventTimeMs,
          initiator: e.initiator,
          correlationId: e.correlationId,
          outcome: e.outcome,
        }) as LineageMember['evidence'][number],
    ),
  };
}

export function checkpointView(c: Checkpoint): Checkpoint {
  return {
    groupId: c.groupId,
    generation: c.generation,
    headHash: c.headHash,
    signedAtMs: c.signedAtMs,
    keyId: c.keyId,
    algorithm: c.algorithm,
    signature: c.signature,
  };
}

/**
 * A run as auditors and operators see it (the same view for both roles): the saga's progress without its escrow ciphertext (which only lockstep may unwrap),
 * with secret-looking fields redacted as a second line of defence.
 */
export function runView(run: object): Record<string, unknown> {
  const { escrow: _escrow, _id: _docId, _rev: _docRev, ...rest } = run as Record<string, unknown>;
  return redact(rest) as Record<string, unknown>;
}

function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
