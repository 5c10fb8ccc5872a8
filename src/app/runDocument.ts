/**
 * The run document as the runner reads and writes it: its repository, the references and errors it holds, the
 * merge of concurrent Activity Tracker evidence, the calls list, and the views callers take of it. No I/O here but
 * the escrow lookup through the store port.
 */
import {
  AppError,
  type EscrowKeyRef,
  type Group,
  hasCode,
  isAppError,
  type KeyCrn,
  type KeyId,
} from '../core/index.js';
import { canonicalJson } from '../lineage/index.js';
import {
  duplicatesOf,
  type MemberCall,
  MemberProgress,
  primaryOf,
  type RotationRun,
  type RunError,
  RunKind,
  type RunMember,
  Step,
} from '../rotation/index.js';
import type { EscrowedMaterialRecord } from './escrow.js';
import type { KeyRef, RunRepository, Stores } from './ports.js';

/** Calls kept per member of a run (a run rotates a member a few times at most: retries after ambiguous failures). */
const MAX_CALLS_PER_MEMBER = 20;

export function runsOf(stores: Stores): RunRepository<RotationRun> {
  return stores.runs as unknown as RunRepository<RotationRun>;
}

/** The run's escrow key; only a `create` run that has not made it yet lacks one. */
export function escrowKeyOf(run: RotationRun): EscrowKeyRef {
  if (!run.escrowKey) throw new AppError('INTERNAL', `run ${run.id} has no escrow key yet`);
  return run.escrowKey;
}

export function refOf(m: RunMember): KeyRef {
  if (!m.keyId) throw new Error(`member ${m.slot} has no key yet`);
  return { region: m.region, instanceId: m.instanceId, keyId: m.keyId };
}

/** The escrowed material of one generation (kept with the create or rotation run that produced it). */
export async function escrowOf(
  stores: Stores,
  groupId: RotationRun['groupId'],
  generation: number,
): Promise<EscrowedMaterialRecord | undefined> {
  // The generation's lineage record names the run that made it: two reads by key, consistent on Cloudant (a query
  // index can lag behind a write) and independent of how many runs the group has had.
  const recorded = await stores.lineage.get(groupId, generation).catch((err: unknown) => {
    if (hasCode(err, 'GENERATION_NOT_FOUND')) return undefined;
    throw err;
  });
  if (recorded) {
    const run = await runsOf(stores)
      .get(recorded.runId)
      .then(
        (v) => v.value,
        (err: unknown) => {
          if (hasCode(err, 'RUN_NOT_FOUND')) return undefined;
          throw err;
        },
      );
    if (run) {
      // an adopted generation (its material never seen) has no escrow
      const made = (run.kind === RunKind.CREATE || run.kind === RunKind.ROTATION) && run.generation === generation;
      return made ? run.escrow : undefined;
    }
  }
  // Not recorded (yet), or its run document is gone: the group's runs, newest first.
  const list = await runsOf(stores).listByGroup(groupId, 500);
  const run = list.find(
    (r) =>
      r.generation === generation &&
      (r.kind === RunKind.CREATE || r.kind === RunKind.ROTATION) &&
      r.escrow &&
      (r.status === 'completed' || r.step === Step.DONE),
  );
  return run?.escrow;
}

/** An allowlisted error for the run document (never an upstream body). */
export function toRunError(err: unknown, nowMs: number): RunError {
  if (isAppError(err)) {
    const d = err.details;
    return {
      code: err.code,
      message: err.message.slice(0, 500),
      retryable: err.retryable,
      ...(typeof d.retryAfterMs === 'number' ? { retryAfterMs: d.retryAfterMs } : {}),
      ...(typeof d.correlationId === 'string' ? { correlationId: d.correlationId } : {}),
      atMs: nowMs,
    };
  }
  return { code: 'INTERNAL', message: 'unexpected error (see worker log)', retryable: true, atMs: nowMs };
}

/** Run state without the Activity Tracker evidence and timestamps that the events function may add concurrently. */
function sagaState(run: RotationRun): unknown {
  return { ...run, updatedAtMs: 0, members: run.members.map((m) => ({ ...m, evidence: [] })) };
}

/** True when `current` differs from `base` only by evidence appended to members. */
export function onlyEvidenceAdded(base: RotationRun, current: RotationRun): boolean {
  // canonical JSON: documents built locally and read back from the store compare equal
  if (canonicalJson(sagaState(base)) !== canonicalJson(sagaState(current))) return false;
  return base.members.every((m, i) => {
    const known = new Set(current.members[i]?.evidence.map((e) => e.eventId));
    return m.evidence.every((e) => known.has(e.eventId));
  });
}

/** `next` with every evidence item of `current` that it lacks. */
export function withEvidenceOf(next: RotationRun, current: RotationRun): RotationRun {
  return {
    ...next,
    members: next.members.map((m) => {
      const extra = current.members.find((c) => c.slot === m.slot)?.evidence ?? [];
      const have = new Set(m.evidence.map((e) => e.eventId));
      return { ...m, evidence: [...m.evidence, ...extra.filter((e) => !have.has(e.eventId))] };
    }),
  };
}

/** `run` with `calls` appended to their members' changing calls (bounded list). */
export function withCalls(run: RotationRun, calls: ReadonlyMap<string, MemberCall>): RotationRun {
  for (const slot of calls.keys()) {
    if (!run.members.some((m) => m.slot === slot)) throw new Error(`no member ${slot}`);
  }
  return {
    ...run,
    members: run.members.map((m) => {
      const call = calls.get(m.slot);
      return call ? { ...m, calls: [...(m.calls ?? []), call].slice(-MAX_CALLS_PER_MEMBER) } : m;
    }),
  };
}

/** The group members a create run made (with their key rings). */
export function membersOf(run: RotationRun): Group['members'] {
  return run.members.map((m) => ({
    role: m.role,
    region: m.region,
    instanceId: m.instanceId,
    keyId: m.keyId as KeyId,
    crn: m.crn as KeyCrn,
    ...(m.keyRingId ? { keyRingId: m.keyRingId } : {}),
  }));
}

/** The staged duplicates of a run and its primary, for callers that report progress. */
export function progressOf(run: RotationRun): { staged: number; total: number; primaryPromoted: boolean } {
  const dups = duplicatesOf(run);
  return {
    staged: dups.filter((d) => d.progress === MemberProgress.STAGED).length,
    total: dups.length,
    primaryPromoted: primaryOf(run).progress === MemberProgress.STAGED,
  };
}
