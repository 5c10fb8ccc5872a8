/**
 * Verification of a group against Key Protect: every member's **current** version is compared with the version the
 * lineage records for it (the head generation; a region that joined later by its replay), and every member's state
 * is read. Drift (a version lockstep did not make, or a member without a recorded version) marks the group diverged,
 * notifies and schedules a healing rotation as soon as Key Protect's 1 h rule allows; a member that is suspended,
 * deactivated or destroyed marks it degraded. A clean verification clears what an earlier verification found.
 * Nothing here trusts an event: the trigger is only a label, every state change comes from these reads.
 */
import {
  AppError,
  type Group,
  type GroupId,
  type GroupStatus,
  hasCode,
  isAppError,
  type KeyCrn,
  type KeyVersionId,
  type RunId,
  type Verification,
} from '../core/index.js';
import {
  catchUpReason,
  type MemberReading,
  missingGenerations,
  newRun,
  type RotationRun,
  RunKind,
} from '../rotation/index.js';
import { probeEvidence } from './canary.js';
import { escrowOf, runsOf } from './runDocument.js';
import type { RunnerContext } from './runner.js';
import type { GenerationProbe, MemberCheck, VerifyResult } from './service.js';

/** Prefix of every group status reason a verification writes (only those may be cleared by a later one). */
export const VERIFICATION_REASON = 'Verification';

const UNFINISHED = new Set(['pending', 'running', 'degraded']);
const STATE_TEXT: Record<number, NonNullable<MemberCheck['state']>> = {
  0: 'pre-active',
  2: 'suspended',
  3: 'deactivated',
  5: 'destroyed',
};

/** A trigger label as shown to operators: bounded, printable, never starting with a formula character. */
export function triggerLabel(text: string): string {
  const t = String(text)
    .replace(/[^A-Za-z0-9 ._:@/+()"'=,-]/g, '_')
    .slice(0, 160);
  return /^[=+\-@]/.test(t) ? `'${t}` : t;
}

/** What verifying needs besides the runner context. */
export interface VerifyOptions {
  /** Who or what asked (see {@link triggerLabel}). */
  trigger: string;
  /** Also probe every recorded generation with its canary (operator `verify`); the wake-up reads versions only. */
  probes?: boolean;
}

/**
 * Verifies one group against Key Protect and applies what it finds to the group (status, reason, notification,
 * healing run, `lastVerification`; a pending verification request up to this one is cleared).
 * @throws {AppError} GROUP_NOT_FOUND
 */
export async function verifyGroup(
  ctx: RunnerContext,
  newRunId: (groupId: GroupId, generation: number) => RunId,
  groupId: GroupId,
  opts: VerifyOptions,
): Promise<VerifyResult> {
  const startedAtMs = ctx.clock.nowMs();
  const trigger = triggerLabel(opts.trigger);
  const { value: group } = await ctx.stores.groups.get(groupId);
  // What lockstep recorded is read before and after Key Protect: a run that rotates or records meanwhile is seen
  // on one side or the other, so its own versions are never taken for drift.
  const before = await recordedState(ctx, group);
  const cid = () => ({ correlationId: ctx.random.uuid() });
  const readings = await Promise.all(group.members.map((m) => readMember(ctx, m, cid())));
  const after = await recordedState(ctx, group);
  const head = after.head;
  const active = after.active ?? before.active;
  const problems: string[] = [];
  const members: MemberCheck[] = [];
  let drift = false;
  let loss = false;
  let incomplete = false;
  const lagging: Lagging[] = [];
  let known: Promise<Map<string, number>> | undefined;
  for (const [i, m] of group.members.entries()) {
    const r = readings[i]!;
    const who = `${m.role} ${m.region} (${m.crn})`;
    const expected = expectedVersion(group, after.head, after.recent, m.crn);
    const accepted = new Set(
      [before, after].flatMap((x) => [
        expectedVersion(group, x.head, x.recent, m.crn),
        x.active?.members.find((y) => y.crn === m.crn)?.versionId,
      ]),
    );
    const check: MemberCheck = {
      crn: m.crn,
      role: m.role,
      region: m.region,
      ok: false,
      ...(expected ? { expectedVersionId: expected } : {}),
    };
    members.push(check);
    if (r instanceof AppError) {
      incomplete = true;
      check.state = 'unreachable';
      problems.push(`${who} could not be read: ${r.code}`);
      continue;
    }
    check.state = r.deleted ? 'destroyed' : (STATE_TEXT[r.state] ?? 'active');
    if (r.currentVersionId) check.currentVersionId = r.currentVersionId;
    if (r.deleted || r.state !== 1) {
      loss = true;
      problems.push(`${who} is ${check.state}${r.deleted ? '' : ` (state ${r.state})`}`);
    }
    if (r.deleted) continue;
    const staged = active?.members.find((x) => x.crn === m.crn);
    const gap = active?.kind === RunKind.CATCH_UP && staged ? missingGenerations(active) : undefined;
    if (gap) {
      // Being caught up: whatever version it holds now, the run re-imports (and proves) the rest.
      lagging.push({ member: m, from: gap.from, to: gap.to });
      problems.push(`${who} cannot unwrap generation(s) ${gap.from}–${gap.to} yet (catch-up run ${active!.id})`);
      continue;
    }
    if (r.currentVersionId && accepted.has(r.currentVersionId)) {
      check.ok = r.state === 1;
      continue;
    }
    if (staged && staged.progress !== 'staged' && (staged.calls ?? []).length > 0) {
      // The run sent (or is sending) a rotate it has not recorded yet: the run itself proves the version next.
      incomplete = true;
      problems.push(`${who} holds version ${r.currentVersionId}, which run ${active!.id} has not recorded yet`);
      continue;
    }
    // A version the lineage recorded for this member at an earlier generation: the member went back (a regional
    // recovery, a restore) and lacks the generations after it. That is caught up from escrow, not healed.
    known ??= recordedVersions(ctx, group);
    const heldGeneration = (await known).get(`${m.crn}|${r.currentVersionId}`);
    const headGeneration = head?.generation ?? group.currentGeneration;
    if (heldGeneration !== undefined && heldGeneration < headGeneration) {
      lagging.push({ member: m, from: heldGeneration + 1, to: headGeneration });
      const gens =
        heldGeneration + 1 === headGeneration
          ? `generation ${headGeneration}`
          : `generations ${heldGeneration + 1}–${headGeneration}`;
      problems.push(
        `${who} holds version ${r.currentVersionId} of generation ${heldGeneration}: it cannot unwrap ${gens} (lost in a regional recovery or restore?)`,
      );
      continue;
    }
    drift = true;
    problems.push(
      expected
        ? `${who} holds version ${r.currentVersionId}; the lineage records ${expected} (generation ${head?.generation ?? group.currentGeneration})`
        : `${who} holds version ${r.currentVersionId} and the lineage records no version for it`,
    );
  }
  const probeResult = opts.probes ? await probeGenerations(ctx, group) : { probes: [], unchecked: [] };
  for (const p of probeResult.probes.filter((x) => !x.ok)) {
    problems.push(`generation ${p.generation} on ${p.crn}: ${p.error ?? 'failed'}`);
  }
  const creating = group.currentGeneration === 0;
  const result: Verification['result'] = creating
    ? 'incomplete'
    : drift || loss || lagging.length > 0 || probeResult.probes.some((p) => !p.ok)
      ? 'problems'
      : incomplete
        ? 'incomplete'
        : 'ok';
  const verification: Verification = { atMs: startedAtMs, trigger, result, problems: problems.slice(0, 50) };
  const effect = creating
    ? { status: group.status }
    : await applyFindings(ctx, newRunId, group, active, readings, {
        drift,
        loss,
        lagging,
        result,
        problems,
        trigger,
      });
  await ctx.stores.groups.mutate(group.id, (g) => {
    const out: Group = { ...g, lastVerification: verification };
    // The periodic verification comes round again (the scheduler's index-backed query).
    if (ctx.config.verifyIntervalMs > 0) out.verifyDueAtMs = startedAtMs + ctx.config.verifyIntervalMs;
    if (effect.group) Object.assign(out, effect.group(g));
    // A request is answered by a conclusive verification only: an unreadable member (or a run still recording)
    // leaves it for the next tick, so a wake-up is not lost to a Key Protect outage.
    if (
      result !== 'incomplete' &&
      g.verificationRequestedAtMs !== undefined &&
      g.verificationRequestedAtMs <= startedAtMs
    ) {
      delete out.verificationRequestedAtMs;
    }
    if (out.statusReason === undefined) delete out.statusReason;
    return out;
  });
  ctx.logger.info('group verified', { groupId: group.id, result, problems: problems.length, trigger });
  return {
    groupId: group.id,
    ok: result === 'ok',
    result,
    problems: verification.problems,
    members,
    probes: probeResult.probes,
    unchecked: probeResult.unchecked,
    status: effect.status,
    ...(effect.healRunId ? { healRunId: effect.healRunId } : {}),
    ...(effect.catchUpRunId ? { catchUpRunId: effect.catchUpRunId } : {}),
  };
}

/** A member whose current version is one the lineage recorded at an earlier generation. */
interface Lagging {
  member: Group['members'][number];
  /** First generation it lacks … the head generation. */
  from: number;
  to: number;
}

/**
 * Every version lockstep recorded for each member (`<crn>|<versionId>` → generation): the lineage's records and the
 * versions completed region replays and catch-ups wrote.
 */
async function recordedVersions(ctx: RunnerContext, group: Group): Promise<Map<string, number>> {
  const [chain, runs] = await Promise.all([
    ctx.stores.lineage.chain(group.id),
    runsOf(ctx.stores).listByGroup(group.id, 500),
  ]);
  const out = new Map<string, number>();
  for (const record of chain) for (const m of record.members) out.set(`${m.crn}|${m.keyVersionId}`, record.generation);
  for (const run of runs) {
    const crn = run.members[0]?.crn;
    if (!crn || !run.replay || (run.kind !== RunKind.ADD_REGION && run.kind !== RunKind.CATCH_UP)) continue;
    for (const [g, v] of Object.entries(run.replay.versions)) out.set(`${crn}|${v}`, Number(g));
  }
  return out;
}

/** The lineage head, the group's recent runs and its unfinished active run, as stored now. */
async function recordedState(ctx: RunnerContext, group: Group) {
  const [head, recent] = await Promise.all([
    ctx.stores.lineage.head(group.id),
    runsOf(ctx.stores).listByGroup(group.id, 20),
  ]);
  const active = recent.find((r) => UNFINISHED.has(r.status) && r.kind !== RunKind.ADD_REGION);
  return { head, recent, active };
}

/**
 * One member as Key Protect reports it: state and current version from the key's metadata (one request; listing
 * versions is refused for a key that is not active). A deleted or missing key reads as destroyed.
 */
async function readMember(
  ctx: RunnerContext,
  m: Group['members'][number],
  opts: { correlationId: string },
): Promise<MemberReading | AppError> {
  try {
    const key = await ctx.kp.getKey(m, opts);
    return {
      slot: m.crn,
      state: key.state,
      deleted: key.deleted,
      currentVersionId: key.currentVersionId,
      versionCount: 0,
      ...(key.lastRotateAtMs !== undefined ? { lastRotateAtMs: key.lastRotateAtMs } : {}),
    };
  } catch (err) {
    if (hasCode(err, 'KEY_NOT_FOUND', 'KEY_DELETED')) {
      return { slot: m.crn, state: 5, deleted: true, currentVersionId: '' as KeyVersionId, versionCount: 0 };
    }
    if (isAppError(err)) return err;
    throw err;
  }
}

/** The version the lineage records for a member: the head record's, or (joined later) its add-region replay's. */
function expectedVersion(
  group: Group,
  head: { generation: number; members: { crn: string; keyVersionId: KeyVersionId }[] } | undefined,
  recent: RotationRun[],
  crn: KeyCrn,
): KeyVersionId | undefined {
  const generation = String(head?.generation ?? group.currentGeneration);
  // A member that was caught up holds the head generation at the version its catch-up re-imported.
  const caughtUp = recent.find(
    (r) =>
      r.kind === RunKind.CATCH_UP &&
      r.status === 'completed' &&
      r.members[0]?.crn === crn &&
      r.replay?.versions[generation],
  );
  if (caughtUp) return caughtUp.replay!.versions[generation] as KeyVersionId;
  const inHead = head?.members.find((x) => x.crn === crn)?.keyVersionId;
  if (inHead) return inHead;
  const joined = recent.find(
    (r) => r.kind === RunKind.ADD_REGION && r.status === 'completed' && r.members[0]?.crn === crn,
  );
  const v = joined?.replay?.versions[generation];
  return v as KeyVersionId | undefined;
}

interface Findings {
  drift: boolean;
  loss: boolean;
  lagging: Lagging[];
  result: Verification['result'];
  problems: string[];
  trigger: string;
}

/** True when the group's last verification found exactly these problems (a finding is notified once). */
function sameFindings(group: Group, problems: string[]): boolean {
  const before = group.lastVerification?.problems ?? [];
  const now = problems.slice(0, 50);
  return before.length === now.length && before.every((p, i) => p === now[i]);
}

/** The kind of trigger a healing run records (its `by` is always lockstep's own text). */
function healKind(trigger: string): 'event' | 'operator' | 'schedule' {
  if (/^(event|alert)/.test(trigger)) return 'event';
  return /^operator/.test(trigger) ? 'operator' : 'schedule';
}

/** Status, reason, notification and healing run for what a verification found. */
async function applyFindings(
  ctx: RunnerContext,
  newRunId: (groupId: GroupId, generation: number) => RunId,
  group: Group,
  active: RotationRun | undefined,
  readings: Array<MemberReading | AppError>,
  f: Findings,
): Promise<{ status: GroupStatus; healRunId?: RunId; catchUpRunId?: RunId; group?: (g: Group) => Partial<Group> }> {
  const nowMs = ctx.clock.nowMs();
  const summary = f.problems.slice(0, 5).join('; ');
  if (!f.drift && !f.loss && f.lagging.length > 0) return planCatchUp(ctx, newRunId, group, active, readings, f);
  if (f.drift || f.loss) {
    const status: GroupStatus = f.drift ? 'diverged' : 'degraded';
    let healRunId: RunId | undefined;
    let notBeforeMs: number | undefined;
    if (f.drift && !active && !f.loss) {
      // As soon as Key Protect's 1 h rule allows for every member (read from Key Protect, never from an event).
      const last = readings.map((r) => (r instanceof AppError ? undefined : r.lastRotateAtMs));
      notBeforeMs = Math.max(nowMs, ...last.map((t) => (t === undefined ? 0 : t + ctx.config.rotationMinIntervalMs)));
      healRunId = newRunId(group.id, group.currentGeneration + 1);
      const claimed = await ctx.stores.groups.mutate(group.id, (g) =>
        g.activeRunId ? g : { ...g, activeRunId: healRunId!, updatedAtMs: nowMs },
      );
      if (claimed.value.activeRunId === healRunId) {
        await runsOf(ctx.stores).create(
          newRun({
            id: healRunId,
            groupId: group.id,
            generation: group.currentGeneration + 1,
            kind: RunKind.ROTATION,
            trigger: {
              kind: healKind(f.trigger),
              by: `verification:${nowMs}`,
              reason: 'heal drift found by verification',
            },
            members: group.members,
            escrowKey: group.escrow,
            nowMs,
            deadlineAtMs: notBeforeMs + ctx.config.runDeadlineMs,
            notBeforeMs,
            heal: true,
            notes: [
              `foreign version (drift) found by verification at ${new Date(nowMs).toISOString()}: ${summary}`.slice(
                0,
                900,
              ),
            ],
          }),
        );
      } else healRunId = undefined;
    }
    const plan = healRunId
      ? ` Healing run ${healRunId} rotates every member with new material from ${new Date(notBeforeMs!).toISOString()} (Key Protect's 1 h rule).`
      : active
        ? ` Run ${active.id} is in progress; it re-reads every member before rotating it.`
        : f.loss
          ? ' The group cannot rotate until the member is active again (restore or enable it in Key Protect); DR unwrap through it fails meanwhile.'
          : '';
    const reason = `${VERIFICATION_REASON} (${f.trigger}): ${summary}.${plan}`.slice(0, 1000);
    // A new finding (status or problems) is notified; the same finding seen by a later trigger is not.
    const changed = group.status !== status || !sameFindings(group, f.problems);
    if (changed && ctx.notifier) {
      await ctx.notifier
        .publish({
          type: `com.ibm.lockstep.group.${status}`,
          subject: group.id,
          data: { groupId: group.id, reason, problems: f.problems.slice(0, 10), ...(healRunId ? { healRunId } : {}) },
        })
        .catch(() => undefined);
    }
    ctx.logger.warn('verification found problems', { groupId: group.id, status, problems: f.problems.length });
    return {
      status,
      ...(healRunId ? { healRunId } : {}),
      group: () => ({ status, statusReason: reason, updatedAtMs: nowMs }),
    };
  }
  if (f.result === 'ok' && !active && (group.status === 'degraded' || group.status === 'diverged')) {
    // Only what a verification found may be cleared by one; a failed or diverged run keeps its own reason.
    return {
      status: group.statusReason?.startsWith(VERIFICATION_REASON) ? 'healthy' : group.status,
      group: (g) =>
        g.statusReason?.startsWith(VERIFICATION_REASON) && !g.activeRunId
          ? { status: 'healthy', statusReason: undefined as never, updatedAtMs: nowMs }
          : {},
    };
  }
  return { status: group.status };
}

/**
 * A member lacks recorded generations: a catch-up run (claiming the group, so no rotation moves the head meanwhile)
 * re-imports them from escrow, oldest first, one per allowed hour. One member at a time: the next verification
 * finds the next one. Without escrow for every missing generation (adopted keys) there is nothing to re-import:
 * the group stays degraded with the explanation, and a lockstep rotation (which gives every member the new
 * generation) is the way out.
 */
async function planCatchUp(
  ctx: RunnerContext,
  newRunId: (groupId: GroupId, generation: number) => RunId,
  group: Group,
  active: RotationRun | undefined,
  readings: Array<MemberReading | AppError>,
  f: Findings,
): Promise<{ status: GroupStatus; catchUpRunId?: RunId; group?: (g: Group) => Partial<Group> }> {
  const nowMs = ctx.clock.nowMs();
  const lag = f.lagging[0]!;
  const summary = f.problems.slice(0, 5).join('; ');
  let runId: RunId | undefined;
  let plan: string;
  const escrowed = await Promise.all(
    Array.from({ length: lag.to - lag.from + 1 }, (_, i) => escrowOf(ctx.stores, group.id, lag.from + i)),
  );
  const notEscrowed = escrowed.indexOf(undefined);
  if (active) {
    plan =
      active.kind === RunKind.CATCH_UP
        ? ` ${catchUpReason(active)}.`
        : ` Run ${active.id} is in progress; the member is caught up after it.`;
  } else if (notEscrowed >= 0) {
    plan = ` Generation ${lag.from + notEscrowed} is not escrowed (adopted keys), so it cannot be re-imported; rotate the group (lockstep rotate ${group.id}) to give every member a new escrowed generation.`;
  } else {
    const i = group.members.indexOf(lag.member);
    const r = readings[i];
    const last = r instanceof AppError ? undefined : r?.lastRotateAtMs;
    const missing = lag.to - lag.from + 1;
    runId = newRunId(group.id, lag.to);
    const claimed = await ctx.stores.groups.mutate(group.id, (g) =>
      g.activeRunId ? g : { ...g, activeRunId: runId!, updatedAtMs: nowMs },
    );
    if (claimed.value.activeRunId === runId) {
      const run = newRun({
        id: runId,
        groupId: group.id,
        generation: lag.to,
        kind: RunKind.CATCH_UP,
        trigger: {
          kind: healKind(f.trigger),
          by: `verification:${nowMs}`,
          reason: 'catch up a member that lacks recorded generations',
        },
        members: [lag.member],
        escrowKey: group.escrow,
        nowMs,
        // one generation per allowed hour, plus the usual allowance for failures
        deadlineAtMs: nowMs + ctx.config.runDeadlineMs + missing * ctx.config.rotationMinIntervalMs,
        replayFrom: lag.from,
        notes: [`found by verification at ${new Date(nowMs).toISOString()}: ${summary}`.slice(0, 900)],
      });
      await runsOf(ctx.stores).create(run);
      const first = last !== undefined ? Math.max(nowMs, last + ctx.config.rotationMinIntervalMs) : nowMs;
      plan = ` ${catchUpReason(run, first)}.`;
      ctx.logger.info('catch-up planned', {
        groupId: group.id,
        runId,
        crn: lag.member.crn,
        from: lag.from,
        to: lag.to,
      });
    } else {
      runId = undefined;
      plan = ` Run ${claimed.value.activeRunId} is in progress; the member is caught up after it.`;
    }
  }
  const reason = `${VERIFICATION_REASON} (${f.trigger}): ${summary}.${plan}`.slice(0, 1000);
  const changed = group.status !== 'degraded' || !sameFindings(group, f.problems);
  if (changed && ctx.notifier) {
    await ctx.notifier
      .publish({
        type: 'com.ibm.lockstep.group.degraded',
        subject: group.id,
        data: {
          groupId: group.id,
          reason,
          problems: f.problems.slice(0, 10),
          ...(runId ? { catchUpRunId: runId } : {}),
        },
      })
      .catch(() => undefined);
  }
  ctx.logger.warn('verification found a member behind', { groupId: group.id, crn: lag.member.crn, from: lag.from });
  return {
    status: 'degraded',
    ...(runId ? { catchUpRunId: runId } : {}),
    group: () => ({ status: 'degraded', statusReason: reason, updatedAtMs: nowMs }),
  };
}

/** Canary probe of every recorded generation on every member (the operator's full verification). */
async function probeGenerations(
  ctx: RunnerContext,
  group: Group,
): Promise<{ probes: GenerationProbe[]; unchecked: number[] }> {
  const [chain, runs] = await Promise.all([
    ctx.stores.lineage.chain(group.id),
    runsOf(ctx.stores).listByGroup(group.id, 500),
  ]);
  // A caught-up member holds a re-imported generation at the version its catch-up recorded (newest run first).
  const reimported = (crn: string, generation: number) =>
    runs.find((r) => r.kind === RunKind.CATCH_UP && r.members[0]?.crn === crn && r.replay?.versions[String(generation)])
      ?.replay?.versions[String(generation)] as KeyVersionId | undefined;
  const probes: GenerationProbe[] = [];
  const unchecked: number[] = [];
  for (const record of chain) {
    const canary = record.verification.find((c) => c.ok);
    if (!canary) {
      unchecked.push(record.generation);
      continue;
    }
    for (const m of group.members) {
      const expected =
        reimported(m.crn, record.generation) ?? record.members.find((x) => x.crn === m.crn)?.keyVersionId;
      // A region added later holds only the generations its replay gave it (an adopted group's start unescrowed).
      const joinedAt = runs.find(
        (r) => r.kind === RunKind.ADD_REGION && r.status === 'completed' && r.members[0]?.crn === m.crn,
      )?.replay?.versions;
      if (!expected && joinedAt && !joinedAt[String(record.generation)]) continue;
      try {
        const r = await probeEvidence(ctx.kp, m, canary, { correlationId: ctx.random.uuid() });
        const ok = r.holds && (expected === undefined || r.versionId === expected);
        probes.push({
          generation: record.generation,
          crn: m.crn,
          ok,
          ...(r.versionId ? { reportedVersionId: r.versionId as KeyVersionId } : {}),
          ...(expected ? { expectedVersionId: expected } : {}),
          ...(!r.holds ? { error: 'does not hold this generation' } : !ok ? { error: 'reports another version' } : {}),
        });
      } catch (err) {
        probes.push({
          generation: record.generation,
          crn: m.crn,
          ok: false,
          ...(expected ? { expectedVersionId: expected } : {}),
          error: err instanceof AppError ? `${err.code}: ${err.message}` : 'unexpected error',
        });
      }
    }
  }
  return { probes, unchecked };
}

/**
 * Records that a group must be verified (an alert or a foreign event asked for it) and makes the scheduler see it:
 * `nextDueAtMs` is brought forward to now (index-backed), and the tick verifies groups with a pending request.
 */
export async function requestVerification(
  ctx: Pick<RunnerContext, 'stores'>,
  groupId: GroupId,
  atMs: number,
): Promise<void> {
  await ctx.stores.groups.mutate(groupId, (g) => ({
    ...g,
    verificationRequestedAtMs: Math.min(g.verificationRequestedAtMs ?? atMs, atMs),
    nextDueAtMs: Math.min(g.nextDueAtMs ?? atMs, atMs),
  }));
}
