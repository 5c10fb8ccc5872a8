/**
 * The pure rotation decider: given a run's persisted state (and the time, injected), {@link decide} says what to do
 * next; given the outcome of that step, {@link applyOutcome} returns the next state. No I/O, clock or randomness.
 * The runner in `src/app` executes the commands through the ports and persists every state this module returns
 * before it asks for the next command. The state machine and its rules are drawn in `README.md` next to this file.
 */

import { memberStateProblem } from './memberState.js';
import type { MemberReading } from './types.js';
import {
  type Command,
  type Decision,
  MemberProgress,
  type Outcome,
  type RotationRun,
  type RunError,
  RunKind,
  type RunMember,
  Step,
} from './types.js';

/** The decider's tunables (a subset of the service config). */
export interface DeciderConfig {
  rotationMinIntervalMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

const KP_ACTIVE = 1;
const MAX_TRANSITIONS = 100;
const MAX_NOTES = 50;

/** Steps at which the run's deadline still applies: before the primary holds the new material. */
const DEADLINE_STEPS: readonly Step[] = [Step.PLAN, Step.GENERATE, Step.STAGE, Step.VERIFY, Step.PROMOTE];

/** The stable in-run name of a member. */
export function slotOf(m: { role: string; region: string; instanceId: string }): string {
  return `${m.role}:${m.region}:${m.instanceId}`;
}

export function primaryOf(run: RotationRun): RunMember {
  const p = run.members.find((m) => m.role === 'primary');
  if (!p) throw new Error(`run ${run.id} has no primary`);
  return p;
}

export function duplicatesOf(run: RotationRun): RunMember[] {
  return run.members.filter((m) => m.role === 'duplicate');
}

/** Exponential backoff for the n-th attempt (n ≥ 1), capped; an upstream Retry-After wins when longer. */
/**
 * Wait before attempt `attempt + 1`: exponential from `retryBaseMs`, never shorter than the server's Retry-After.
 * A failure caused by the rate limit (`throttled`: Key Protect answered 429) starts from its Retry-After (at least
 * 1 s) instead: the service said when it will answer again, and the generic backoff would idle the run far longer.
 */
export function backoffMs(attempt: number, cfg: DeciderConfig, retryAfterMs?: number, throttled = false): number {
  const base = throttled ? Math.min(cfg.retryBaseMs, Math.max(1_000, retryAfterMs ?? 0)) : cfg.retryBaseMs;
  const exp = Math.min(cfg.retryMaxMs, base * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.max(exp, retryAfterMs ?? 0);
}

const THROTTLED = 'UPSTREAM_RATE_LIMITED';

function isTerminal(run: RotationRun): boolean {
  if (run.status === 'completed' || run.status === 'failed' || run.status === 'stopped') return true;
  // A divergence found after promotion still records the generation (as diverged) before it stops.
  return run.status === 'diverged' && run.step !== Step.RECORD && run.step !== Step.RELEASE;
}

/**
 * Moves a run past steps whose goal already holds (every duplicate staged → verify; no duplicates → promote; primary
 * staged → prove). Used by both {@link decide} and {@link applyOutcome}, so the step an outcome is applied to is the
 * step whose command produced it.
 */
export function normalizeStep(run: RotationRun): Step {
  let step = run.step;
  if (isReplayRun(run)) return step; // one member, its own loop (stage ⇄ prove)
  if (step === Step.STAGE && duplicatesOf(run).every((m) => m.progress === MemberProgress.STAGED)) step = Step.VERIFY;
  if (step === Step.VERIFY && duplicatesOf(run).length === 0) step = Step.PROMOTE;
  if (step === Step.PROMOTE && primaryOf(run).progress === MemberProgress.STAGED) step = Step.PROVE;
  return step;
}

/** What to do next for `run` at `nowMs`. */
export function decide(input: RotationRun, nowMs: number): Decision {
  const step = normalizeStep(input);
  const run = step === input.step ? input : { ...input, step };
  if (isTerminal(run)) {
    return {
      kind: 'finished',
      status: run.status === 'completed' ? 'completed' : run.status === 'diverged' ? 'diverged' : 'failed',
      reason: run.statusReason,
    };
  }
  if (run.step === Step.DONE) return { kind: 'finished', status: 'completed' };

  const pastDeadline = nowMs >= run.deadlineAtMs && DEADLINE_STEPS.includes(run.step);
  const wait = (untilMs: number, reason: string): Decision =>
    pastDeadline
      ? { kind: 'command', command: { type: 'GiveUp', reason: explainDeadline(run, reason) } }
      : { kind: 'wait', untilMs, reason };

  // Step-level backoff (a whole step failed, or the 1 h rule postponed planning).
  if (run.nextAttemptAtMs !== undefined && run.nextAttemptAtMs > nowMs && run.step !== Step.STAGE) {
    if (run.step !== Step.PROMOTE || primaryOf(run).progress !== MemberProgress.BLOCKED) {
      return wait(run.nextAttemptAtMs, run.statusReason ?? `waiting before retrying ${run.step}`);
    }
  }
  // A run that keeps failing gives up at its deadline; a healthy one past it still finishes.
  if (pastDeadline && run.status === 'degraded') {
    return { kind: 'command', command: { type: 'GiveUp', reason: explainDeadline(run, run.statusReason) } };
  }

  if (isReplayRun(run)) return decideReplay(run, nowMs, wait);

  switch (run.step) {
    case Step.PLAN:
      return command({ type: 'ReadMembers', slots: run.members.map((m) => m.slot) });
    case Step.GENERATE:
      return command({ type: 'GenerateMaterial', generation: run.generation });
    case Step.STAGE: {
      const open = duplicatesOf(run).filter((m) => m.progress !== MemberProgress.STAGED);
      const ready = open.filter((m) => (m.notBeforeMs ?? 0) <= nowMs);
      if (ready.length === 0) {
        const until = Math.min(...open.map((m) => m.notBeforeMs ?? nowMs));
        return wait(until, run.statusReason ?? 'waiting to retry blocked duplicates');
      }
      return command({ type: 'StageMembers', slots: ready.map((m) => m.slot) });
    }
    case Step.VERIFY: {
      const dups = duplicatesOf(run);
      const [first, ...rest] = dups as [RunMember, ...RunMember[]];
      return command({ type: 'VerifyDuplicates', wrapAt: first.slot, unwrapAt: rest.map((m) => m.slot) });
    }
    case Step.PROMOTE: {
      const p = primaryOf(run);
      // Invariant: the primary gets the material only after every duplicate holds it (verified).
      if (duplicatesOf(run).some((m) => m.progress !== MemberProgress.STAGED)) {
        return command({ type: 'GiveUp', reason: 'internal: promote reached with unstaged duplicates' });
      }
      if ((p.notBeforeMs ?? 0) > nowMs) return wait(p.notBeforeMs!, run.statusReason ?? 'waiting to promote');
      return command({ type: 'PromotePrimary', slot: p.slot });
    }
    case Step.PROVE:
      return command({
        type: 'ProveGroup',
        primary: primaryOf(run).slot,
        duplicates: duplicatesOf(run).map((m) => m.slot),
      });
    case Step.RECORD:
      return command({ type: 'RecordLineage' });
    case Step.RELEASE:
      return command({ type: 'Release' });
  }
  /* c8 ignore next */
  return { kind: 'finished', status: 'failed', reason: `unknown step ${String(run.step)}` };
}

function command(c: Command): Decision {
  return { kind: 'command', command: c };
}

/** True for a run that re-imports recorded generations into one member (`catch-up`). */
export function isReplayRun(run: Pick<RotationRun, 'kind'>): boolean {
  return run.kind === RunKind.CATCH_UP || run.kind === RunKind.ADD_REGION;
}

/** The generations a catch-up run's member cannot unwrap yet (`nextGeneration`…target), as `a–b` text. */
export function missingGenerations(run: RotationRun): { from: number; to: number } | undefined {
  const from = run.replay?.nextGeneration ?? run.generation;
  return from <= run.generation ? { from, to: run.generation } : undefined;
}

/**
 * A catch-up: plan (read the member: active? 1 h rule) → stage (re-import the next missing generation) → prove (its
 * lineage canary unwraps there) → stage again after the member's 1 h window … → release once it holds the target.
 */
function decideReplay(run: RotationRun, nowMs: number, wait: (untilMs: number, reason: string) => Decision): Decision {
  const m = run.members[0]!;
  const generation = run.replay?.nextGeneration ?? run.generation;
  switch (run.step) {
    case Step.PLAN:
      return command({ type: 'ReadMembers', slots: [m.slot] });
    case Step.STAGE:
      if ((m.notBeforeMs ?? 0) > nowMs) {
        return wait(m.notBeforeMs!, run.statusReason ?? `waiting to re-import generation ${generation}`);
      }
      return command({ type: 'ReplayGeneration', slot: m.slot, generation });
    case Step.PROVE:
      return command({ type: 'ProveReplayed', slot: m.slot, generation });
    case Step.RELEASE:
      return command({ type: 'Release' });
    default:
      return { kind: 'finished', status: 'failed', reason: `a ${run.kind} run has no step ${run.step}` };
  }
}

/** Why a catch-up waits: which generations the member cannot unwrap yet, and when the next one is re-imported. */
export function catchUpReason(run: RotationRun, nextAtMs?: number): string {
  const m = run.members[0]!;
  const gap = missingGenerations(run);
  if (!gap) return `${m.role} ${m.region} (${m.crn ?? m.slot}) holds every recorded generation again`;
  const gens = gap.from === gap.to ? `generation ${gap.from}` : `generations ${gap.from}–${gap.to}`;
  const when =
    nextAtMs !== undefined ? `; generation ${gap.from} is re-imported at ${new Date(nextAtMs).toISOString()}` : '';
  return `${CATCH_UP_REASON} run ${run.id}: ${m.role} ${m.region} (${m.crn ?? m.slot}) cannot unwrap ${gens} yet (re-imported from escrow, oldest first, one per allowed hour${when})`;
}

/** Prefix of every group status reason a catch-up run writes. */
export const CATCH_UP_REASON = 'Catch-up';

function explainDeadline(run: RotationRun, why?: string): string {
  const blocked = run.members.filter((m) => m.progress !== MemberProgress.STAGED);
  const who = blocked
    .map(
      (m) =>
        `${m.role} ${m.region} (${m.crn ?? m.slot})${m.lastError ? `: ${m.lastError.code} ${m.lastError.message}` : ''}`,
    )
    .join('; ');
  const primaryUntouched =
    !isReplayRun(run) &&
    run.members.some((m) => m.role === 'primary') &&
    primaryOf(run).progress !== MemberProgress.STAGED;
  return [
    `Run ${run.id} (group ${run.groupId}, generation ${run.generation}) gave up at step "${run.step}" after its deadline ${new Date(run.deadlineAtMs).toISOString()}.`,
    why ? `Last problem: ${why}.` : '',
    who ? `Not staged: ${who}.` : '',
    primaryUntouched
      ? `The primary was NOT rotated: every member still holds generation ${run.generation - 1}, so applications are unaffected; duplicates already staged hold one unused extra version.`
      : '',
    `Fix the member, then resume the run (lockstep rotate --resume ${run.id}); it reuses the same escrowed material.`,
  ]
    .filter(Boolean)
    .join(' ');
}

/** Applies the outcome of the last command; returns a new run (the input is not modified). */
export function applyOutcome(prev: RotationRun, outcome: Outcome, nowMs: number, cfg: DeciderConfig): RotationRun {
  const run: RotationRun = structuredClone(prev);
  run.updatedAtMs = nowMs;
  const fromStep = run.step;
  run.step = normalizeStep(run);
  const fromStatus = run.status;

  switch (outcome.type) {
    case 'MembersRead':
      onMembersRead(run, outcome.readings, nowMs, cfg, outcome.atClaim === true);
      break;
    case 'MaterialEscrowed':
      run.fingerprint = outcome.fingerprint;
      run.escrow = outcome.escrow;
      if (outcome.escrowKey) run.escrowKey = outcome.escrowKey;
      run.step = Step.STAGE;
      run.status = 'running';
      run.attempt = 0;
      run.nextAttemptAtMs = undefined;
      break;
    case 'MemberStaged': {
      const m = memberBySlot(run, outcome.slot);
      if (outcome.keyId) m.keyId = outcome.keyId;
      if (outcome.crn) m.crn = outcome.crn;
      if (outcome.keyRingId) m.keyRingId = outcome.keyRingId;
      if (isReplayRun(run)) {
        onReplayStaged(run, m, outcome.versionId, outcome.rotatedAtMs, outcome.via);
        break;
      }
      m.progress = MemberProgress.STAGED;
      m.versionId = outcome.versionId;
      m.rotatedAtMs = outcome.rotatedAtMs;
      m.stagedVia = outcome.via;
      m.readBack = outcome.readBack;
      m.notBeforeMs = undefined;
      if (outcome.via === 'found') {
        addNote(run, `${m.role} ${m.region}: version ${outcome.versionId} found on re-check (not rotated twice)`);
      }
      if (run.step === Step.STAGE && duplicatesOf(run).every((d) => d.progress === MemberProgress.STAGED)) {
        run.step = Step.VERIFY;
        run.attempt = 0;
      }
      if (run.step === Step.PROMOTE && m.role === 'primary') {
        run.step = Step.PROVE;
        run.attempt = 0;
      }
      if (run.members.every((x) => x.progress !== MemberProgress.BLOCKED) && run.status !== 'diverged') {
        run.status = 'running';
        run.statusReason = undefined;
      }
      break;
    }
    case 'CanaryPassed':
      if (isReplayRun(run)) {
        onReplayProven(run, outcome.evidence, cfg);
        break;
      }
      run.canaries.push(...outcome.evidence);
      run.attempt = 0;
      run.nextAttemptAtMs = undefined;
      if (run.status !== 'diverged') {
        run.status = 'running';
        run.statusReason = undefined;
      }
      if (run.step === Step.VERIFY) run.step = Step.PROMOTE;
      else if (run.step === Step.PROVE) run.step = Step.RECORD;
      break;
    case 'CanaryMismatch':
      run.canaries.push(...outcome.evidence);
      if (run.kind === RunKind.ADOPT) {
        // Keys that do not hold identical material are not adopted: nothing is recorded, no group is written.
        run.status = 'failed';
        run.statusReason = `The keys do not hold identical material: ${outcome.detail}`;
        run.finishedAtMs = nowMs;
        break;
      }
      run.status = 'diverged';
      run.statusReason = isReplayRun(run)
        ? `Re-imported generation ${run.replay?.nextGeneration} into ${run.members[0]!.region} (${run.members[0]!.crn}), but its lineage canary does not unwrap there (${outcome.detail}). Investigate: the escrow or the member holds other material.`
        : run.step === Step.VERIFY
          ? `Duplicates disagree (${outcome.detail}); the primary was NOT rotated. Investigate before resuming.`
          : `Primary and duplicates disagree after promotion (${outcome.detail}); DR unwrap may fail. Investigate now.`;
      // After promotion the generation exists on the primary: record it (as diverged) so auditors see it.
      if (run.step === Step.PROVE && !isReplayRun(run)) run.step = Step.RECORD;
      run.nextAttemptAtMs = undefined;
      break;
    case 'LineageRecorded':
      run.lineageHash = outcome.hash;
      run.step = Step.RELEASE;
      run.attempt = 0;
      run.nextAttemptAtMs = undefined;
      break;
    case 'Released':
      run.step = Step.DONE;
      run.finishedAtMs = nowMs;
      run.nextAttemptAtMs = undefined;
      if (run.status !== 'diverged') {
        run.status = 'completed';
        run.statusReason = undefined;
      }
      break;
    case 'GaveUp':
      run.status = 'failed';
      run.statusReason = outcome.reason;
      run.finishedAtMs = nowMs;
      run.nextAttemptAtMs = undefined;
      break;
    case 'ForeignVersionFound': {
      const m = memberBySlot(run, outcome.slot);
      // From now on the foreign version is the member's baseline: only a version newer than it can be ours.
      addNote(
        run,
        `${m.role} ${m.region} (${m.crn ?? m.slot}): foreign version ${outcome.versionId} (not lockstep's material) exists only on this member`,
      );
      m.snapshotVersionId = outcome.versionId;
      m.snapshotVersionCount = outcome.versionCount;
      run.heals = true;
      break;
    }
    case 'TargetMoved':
      run.generation = outcome.generation;
      for (const m of run.members) m.progress = MemberProgress.PENDING;
      run.deadlineAtMs = Math.max(run.deadlineAtMs, outcome.deadlineAtMs);
      run.step = Step.STAGE;
      break;
    case 'Deferred':
      run.nextAttemptAtMs = outcome.untilMs;
      run.statusReason = outcome.reason;
      break;
    case 'StepFailed':
      onStepFailed(run, outcome.step, outcome.error, nowMs, cfg, outcome.slot);
      break;
  }

  if (run.step !== fromStep || run.status !== fromStatus) {
    run.transitions.push({ atMs: nowMs, from: fromStep, to: run.step, status: run.status, note: run.statusReason });
    if (run.transitions.length > MAX_TRANSITIONS) run.transitions.splice(0, run.transitions.length - MAX_TRANSITIONS);
  }
  return run;
}

function onMembersRead(
  run: RotationRun,
  readings: MemberReading[],
  nowMs: number,
  cfg: DeciderConfig,
  atClaim: boolean,
): void {
  const problems: string[] = [];
  let earliest = 0;
  for (const r of readings) {
    const m = memberBySlot(run, r.slot);
    const stateProblem = r.deleted || r.state !== KP_ACTIVE ? memberStateProblem(r.state, r.deleted) : undefined;
    if (stateProblem) problems.push(`${m.role} ${m.region} (${m.crn ?? m.slot}) ${stateProblem}`);
    if (r.lastRotateAtMs !== undefined) earliest = Math.max(earliest, r.lastRotateAtMs + cfg.rotationMinIntervalMs);
  }
  if (problems.length > 0) {
    run.attempt += 1;
    run.status = 'degraded';
    run.statusReason = `Cannot rotate: ${problems.join('; ')}`;
    run.nextAttemptAtMs = nowMs + backoffMs(run.attempt, cfg);
    return;
  }
  if (earliest > nowMs) {
    // Key Protect allows one rotation per key per hour: plan around it instead of being refused.
    run.status = 'pending';
    run.statusReason = `Key Protect allows one rotation per key per hour; next allowed at ${new Date(earliest).toISOString()}`;
    run.nextAttemptAtMs = earliest;
    return;
  }
  for (const r of readings) {
    const m = memberBySlot(run, r.slot);
    m.snapshotVersionId = r.currentVersionId;
    m.snapshotVersionCount = r.versionCount;
    m.snapshotLastRotateAtMs = r.lastRotateAtMs;
  }
  run.step = isReplayRun(run) ? Step.STAGE : Step.GENERATE;
  run.status = atClaim ? 'pending' : 'running';
  run.statusReason = undefined;
  run.attempt = 0;
  run.nextAttemptAtMs = undefined;
}

function onStepFailed(
  run: RotationRun,
  step: Step,
  error: RunError,
  nowMs: number,
  cfg: DeciderConfig,
  slot?: string,
): void {
  if (slot !== undefined) {
    const m = memberBySlot(run, slot);
    if (m.progress === MemberProgress.STAGED) return; // a late failure report for a member already proved staged
    if (error.code === 'LEASE_HELD') {
      // Another worker is using the instance's import token: the member waits its turn. That is queueing, not a
      // failure (nothing was sent to Key Protect), so no attempt is counted and the run is not degraded.
      m.notBeforeMs = nowMs + (error.retryAfterMs ?? cfg.retryBaseMs);
      run.nextAttemptAtMs = Math.min(
        ...run.members.filter((x) => x.notBeforeMs !== undefined).map((x) => x.notBeforeMs!),
      );
      return;
    }
    m.attempts += 1;
    m.progress = MemberProgress.BLOCKED;
    m.lastError = error;
    const until =
      error.code === 'ROTATION_TOO_SOON' && error.retryAfterMs !== undefined
        ? nowMs + error.retryAfterMs
        : nowMs + backoffMs(m.attempts, cfg, error.retryAfterMs, error.code === THROTTLED);
    m.notBeforeMs = until;
    run.status = 'degraded';
    run.statusReason = isReplayRun(run)
      ? `${run.kind === RunKind.CATCH_UP ? catchUpReason(run) : `Adding ${m.region} (${m.instanceId})`}. Replaying generation ${run.replay?.nextGeneration} failed: ${error.code} ${error.message}; retrying.`
      : m.role === 'duplicate'
        ? `Duplicate ${m.region} (${m.crn ?? m.slot}) cannot be staged: ${error.code} ${error.message}. The primary will not be promoted until it is; retrying with the same escrowed material.`
        : `Primary ${m.region} (${m.crn ?? m.slot}) cannot be promoted yet: ${error.code} ${error.message}. Every duplicate already holds the new material; retrying.`;
    run.nextAttemptAtMs = Math.min(
      ...run.members.filter((x) => x.notBeforeMs !== undefined).map((x) => x.notBeforeMs!),
    );
    return;
  }
  run.attempt += 1;
  run.nextAttemptAtMs = nowMs + backoffMs(run.attempt, cfg, error.retryAfterMs, error.code === THROTTLED);
  run.statusReason = `Step ${step} failed (attempt ${run.attempt}): ${error.code} ${error.message}`;
  if (run.status !== 'diverged') run.status = run.attempt >= 2 || !error.retryable ? 'degraded' : 'running';
}

/** Catch-up: the member holds the re-imported generation at `versionId`; prove it next. */
function onReplayStaged(
  run: RotationRun,
  m: RunMember,
  versionId: string,
  atMs: number,
  via: RunMember['stagedVia'],
): void {
  m.progress = MemberProgress.STAGED;
  m.versionId = versionId as RunMember['versionId'];
  m.rotatedAtMs = atMs;
  m.stagedVia = via;
  m.notBeforeMs = undefined;
  if (via === 'found')
    addNote(run, `${m.role} ${m.region}: version ${versionId} found on re-check (not re-imported twice)`);
  run.step = Step.PROVE;
  run.attempt = 0;
  if (run.status !== 'diverged') {
    run.status = 'running';
    run.statusReason = run.kind === RunKind.CATCH_UP ? catchUpReason(run) : undefined;
  }
}

/**
 * Catch-up: the generation's canary unwrapped at the member. It is recorded in `replay.versions`; the member's new
 * baseline is that version; the next generation waits for the member's 1 h window (Key Protect's `lastRotateAtMs`
 * is the re-import's time), or the run releases when the member holds the target.
 */
function onReplayProven(run: RotationRun, evidence: RotationRun['canaries'], cfg: DeciderConfig): void {
  const m = run.members[0]!;
  const replay = run.replay ?? { nextGeneration: run.generation, versions: {} };
  const g = replay.nextGeneration;
  const madeTheKey = Object.keys(replay.versions).length === 0 && run.kind === RunKind.ADD_REGION;
  run.canaries.push(...evidence);
  replay.versions[String(g)] = m.versionId as string;
  replay.lastRotateAtMs = m.rotatedAtMs;
  replay.nextGeneration = g + 1;
  run.replay = replay;
  addNote(run, `generation ${g} re-imported as version ${m.versionId} and proved by its canary`);
  m.snapshotVersionId = m.versionId;
  run.attempt = 0;
  run.nextAttemptAtMs = undefined;
  // The member's next rotation waits for its hour (also when the target moves on after a release: TargetMoved). An
  // add-region run's first generation created the key: its first rotation has no time restriction.
  const next = madeTheKey ? undefined : (m.rotatedAtMs ?? 0) + cfg.rotationMinIntervalMs;
  m.notBeforeMs = next;
  if (replay.nextGeneration > run.generation) {
    run.step = Step.RELEASE;
    run.statusReason = undefined;
    return;
  }
  m.progress = MemberProgress.PENDING;
  run.step = Step.STAGE;
  run.status = 'running';
  run.statusReason = run.kind === RunKind.CATCH_UP ? catchUpReason(run, next) : undefined;
}

function memberBySlot(run: RotationRun, slot: string): RunMember {
  const m = run.members.find((x) => x.slot === slot);
  if (!m) throw new Error(`run ${run.id} has no member ${slot}`);
  return m;
}

function addNote(run: RotationRun, note: string): void {
  if (!run.notes.includes(note)) run.notes.push(note);
  if (run.notes.length > MAX_NOTES) run.notes.splice(0, run.notes.length - MAX_NOTES);
}

/** Input of {@link newRun}. */
export interface NewRunInput {
  id: RotationRun['id'];
  groupId: RotationRun['groupId'];
  generation: number;
  kind: RunKind;
  trigger: RotationRun['trigger'];
  members: Array<Pick<RunMember, 'role' | 'region' | 'instanceId' | 'keyId' | 'crn' | 'keyRingId'>>;
  escrowKey: RotationRun['escrowKey'];
  createIntent?: RotationRun['createIntent'];
  groupSpec?: RotationRun['groupSpec'];
  nowMs: number;
  deadlineAtMs: number;
  notes?: string[];
  notBeforeMs?: number;
  /** A catch-up's first generation to re-import (its target is `generation`). */
  replayFrom?: number;
  /** The run heals drift (see {@link RotationRun.heals}). */
  heal?: boolean;
}

/** A fresh run at `plan` (rotation) or `generate` (create: there is nothing to read yet). */
export function newRun(input: NewRunInput): RotationRun {
  return {
    id: input.id,
    groupId: input.groupId,
    generation: input.generation,
    kind: input.kind,
    status: 'pending',
    step: input.kind === RunKind.CREATE ? Step.GENERATE : input.kind === RunKind.ADD_REGION ? Step.STAGE : Step.PLAN,
    trigger: input.trigger,
    members: input.members.map((m) => ({
      role: m.role,
      region: m.region,
      instanceId: m.instanceId,
      ...(m.keyId ? { keyId: m.keyId } : {}),
      ...(m.crn ? { crn: m.crn } : {}),
      ...(m.keyRingId ? { keyRingId: m.keyRingId } : {}),
      slot: slotOf(m),
      progress: MemberProgress.PENDING,
      attempts: 0,
      evidence: [],
    })),
    canaries: [],
    ...(input.escrowKey ? { escrowKey: input.escrowKey } : {}),
    ...(input.createIntent ? { createIntent: input.createIntent } : {}),
    ...(input.groupSpec ? { groupSpec: input.groupSpec } : {}),
    ...(input.replayFrom !== undefined ? { replay: { nextGeneration: input.replayFrom, versions: {} } } : {}),
    ...(input.heal ? { heals: true } : {}),
    deadlineAtMs: input.deadlineAtMs,
    createdAtMs: input.nowMs,
    updatedAtMs: input.nowMs,
    startedAtMs: input.nowMs,
    ...(input.notBeforeMs !== undefined ? { nextAttemptAtMs: input.notBeforeMs } : {}),
    notes: input.notes ?? [],
    attempt: 0,
    transitions: [],
  };
}

/** Re-opens a failed run with a new deadline (operator resume); clears member backoffs. */
export function reopenRun(prev: RotationRun, nowMs: number, deadlineAtMs: number): RotationRun {
  const run = structuredClone(prev);
  run.transitions.push({ atMs: nowMs, from: run.step, to: run.step, status: 'running', note: 'resumed by operator' });
  run.status = 'running';
  run.statusReason = undefined;
  run.finishedAtMs = undefined;
  run.deadlineAtMs = deadlineAtMs;
  run.nextAttemptAtMs = undefined;
  run.attempt = 0;
  run.updatedAtMs = nowMs;
  for (const m of run.members) {
    if (m.progress === MemberProgress.BLOCKED) {
      m.progress = MemberProgress.PENDING;
      m.notBeforeMs = undefined;
    }
  }
  return run;
}

/** True when the primary of `run` holds (or may hold) new material: it has been sent a rotation or staged. */
export function primaryPromoted(run: RotationRun): boolean {
  return primaryOf(run).progress === MemberProgress.STAGED;
}
