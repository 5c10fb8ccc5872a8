/**
 * The persisted state of one rotation saga (a run) and the commands/outcomes the pure decider exchanges with the
 * runner in `src/app`. Everything here is plain JSON: the store persists it unchanged.
 */
import type {
  AtEvidence,
  CanaryEvidence,
  ErrorCode,
  EscrowKeyRef,
  InstanceId,
  KeyCrn,
  KeyId,
  KeyVersionId,
  MemberRole,
  RegionId,
  RunRecordBase,
  Schedule,
  Trigger,
} from '../core/index.js';

/** Saga steps, in order. `generate` and `escrow` run as one command: plain material is never persisted between them. */
export const Step = {
  PLAN: 'plan',
  GENERATE: 'generate',
  STAGE: 'stage',
  VERIFY: 'verify',
  PROMOTE: 'promote',
  PROVE: 'prove',
  RECORD: 'record',
  RELEASE: 'release',
  DONE: 'done',
} as const;
export type Step = (typeof Step)[keyof typeof Step];

/** The ordered list of steps (for diagrams, crash matrices and comparisons). */
export const STEP_ORDER: readonly Step[] = [
  Step.PLAN,
  Step.GENERATE,
  Step.STAGE,
  Step.VERIFY,
  Step.PROMOTE,
  Step.PROVE,
  Step.RECORD,
  Step.RELEASE,
  Step.DONE,
];

/**
 * What a run does. `create` creates the member keys (generation 1); `rotation` rotates existing members; `adopt`
 * records the adoption of existing keys (completed when written); `add-region` replays escrowed generations into a
 * new duplicate (stage ⇄ prove from generation 1, then release joins it to the group); `catch-up` re-imports the recorded generations
 * a member lacks (after a regional recovery) from escrow, oldest first, one per allowed hour, each proved by its
 * lineage canary (plan → stage ⇄ prove → release, see `README.md`).
 */
export const RunKind = {
  ROTATION: 'rotation',
  CREATE: 'create',
  ADOPT: 'adopt',
  ADD_REGION: 'add-region',
  CATCH_UP: 'catch-up',
} as const;
export type RunKind = (typeof RunKind)[keyof typeof RunKind];

/** Progress of one member inside a run. */
export const MemberProgress = {
  /** Nothing sent yet (or the last attempt failed before anything could have applied). */
  PENDING: 'pending',
  /** Holds the run's material at `versionId`. */
  STAGED: 'staged',
  /** Cannot be staged right now (reason in `lastError`, retry not before `notBeforeMs`). */
  BLOCKED: 'blocked',
} as const;
export type MemberProgress = (typeof MemberProgress)[keyof typeof MemberProgress];

/** A typed, allowlisted error as kept in a run (never an upstream body). */
export interface RunError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** Upstream asked to wait (Retry-After) or the 1 h rule applies until then. */
  retryAfterMs?: number;
  correlationId?: string;
  atMs: number;
}

/** One member of the group as the run sees it. */
export interface RunMember {
  role: MemberRole;
  region: RegionId;
  instanceId: InstanceId;
  /** Empty for a `create` run until the key exists. */
  keyId?: KeyId;
  crn?: KeyCrn;
  /** The member's key ring (sent as `X-Kms-Key-Ring`), when not `default`. */
  keyRingId?: string;
  /** Stable name inside the run: `<role>:<region>:<instanceId>`. */
  slot: string;
  /** Version the member held when the run planned (absent for `create`). */
  snapshotVersionId?: KeyVersionId;
  snapshotVersionCount?: number;
  snapshotLastRotateAtMs?: number;
  progress: MemberProgress;
  /** The member's version holding this run's material, once staged. */
  versionId?: KeyVersionId;
  rotatedAtMs?: number;
  /** How the staged version was established: we rotated and read it back, or found it when re-checking. */
  stagedVia?: 'rotate' | 'found' | 'create';
  /**
   * The read-back of this run's rotate: a canary wrapped at the member right after it (the wrap names the version
   * that answers). The verify and prove canaries unwrap it elsewhere instead of wrapping again. Only for `versionId`.
   */
  readBack?: CanaryEvidence;
  attempts: number;
  notBeforeMs?: number;
  lastError?: RunError;
  evidence: AtEvidence[];
  /**
   * Key Protect calls this run made that change the member (rotate, create), each with the random `Correlation-Id`
   * lockstep sent, persisted before the call. An Activity Tracker event is lockstep's own only when it matches one.
   */
  calls?: MemberCall[];
}

/** One changing Key Protect call lockstep made on a member. */
export interface MemberCall {
  action: 'kms.secrets.rotate' | 'kms.secrets.create';
  correlationId: string;
  atMs: number;
}

/** One state transition, kept for operators (bounded). */
export interface RunTransition {
  atMs: number;
  from: Step;
  to: Step;
  status: string;
  note?: string;
}

/** The persisted saga (one document per run). */
export interface RotationRun extends RunRecordBase {
  kind: RunKind;
  step: Step;
  trigger: Trigger;
  /** Public fingerprint of the run's material, once generated. */
  fingerprint?: string;
  /** Escrow ciphertext of the material (under the group's escrow key, AAD naming group and generation). */
  escrow?: {
    keyCrn: KeyCrn;
    ciphertext: string;
    aad: string[];
    fingerprint: string;
  };
  members: RunMember[];
  canaries: CanaryEvidence[];
  /** Before promotion, a run still short of its goal at this time fails. */
  deadlineAtMs: number;
  startedAtMs: number;
  finishedAtMs?: number;
  /** Operator-facing explanation of the current status (degraded/failed/diverged). */
  statusReason?: string;
  notes: string[];
  /** Attempts of the current step (resets on every step change). */
  attempt: number;
  /** Lineage hash once recorded. */
  lineageHash?: string;
  /**
   * The group's escrow key (copied at creation so a `create` run can finish before the group document exists).
   * Absent only in a `create` run whose escrow key is still to be made (see `createIntent.escrow`).
   */
  escrowKey?: EscrowKeyRef;
  /**
   * A `create` run's intent, persisted before any key exists: the name and the alias (unique to this run) of every
   * key it makes, so a resumed run finds a key a crashed worker created (Key Protect resolves a key by alias) and
   * adopts it instead of creating another.
   */
  createIntent?: CreateIntent;
  /** For an `add-region` or `catch-up` run: the replay's progress (a catch-up's target is `generation`). */
  replay?: {
    /** Next generation to apply to the member (1 = create the key). */
    nextGeneration: number;
    /** Generation→version map of the new member so far. */
    versions: Record<string, string>;
    lastRotateAtMs?: number;
  };
  /** For a `create` run: the group document to write when the keys exist. */
  groupSpec?: { name: string; description?: string; schedule: Schedule };
  transitions: RunTransition[];
  /** The run replaces material lockstep did not write (drift found by verification, or a foreign version on a member). */
  heals?: boolean;
  /** Set when an operator stopped the run (status `stopped`): who, when, and what it left behind. */
  stop?: RunStop;
}

/** What a `create` run will make (see {@link RotationRun.createIntent}). */
export interface CreateIntent {
  /** The escrow key to create when the group brings none. */
  escrow?: { region: RegionId; instanceId: InstanceId; name: string; alias: string; description: string };
  /** Per member slot. */
  keys: Record<string, { name: string; alias: string; description: string }>;
}

/** What an operator's stop left behind (see `src/app/operatorRuns.ts`). */
export interface RunStop {
  atMs: number;
  /** `operator:<iam id>` */
  by: string;
  reason?: string;
  /** The step the run was at. */
  step: Step;
  /** Duplicates that already hold the run's material as their current version. */
  staged: { slot: string; region: RegionId; crn?: KeyCrn; versionId?: KeyVersionId }[];
  /**
   * Members not known to hold it (the primary always among them). `unconfirmed`: an attempt failed without a clear
   * answer, so the member may hold it after all (a retry re-reads its versions before it rotates again).
   */
  notStaged: { slot: string; role: MemberRole; region: RegionId; unconfirmed?: boolean }[];
  /** The escrowed material stays with the run, so a retry rolls forward with it. */
  escrowKept: boolean;
  fingerprint?: string;
  /** The operator-facing explanation (also the run's `statusReason`). */
  summary: string;
}

// ───────────────────────────── Commands (decider → runner) ─────────────────────────────

export type Command =
  | { type: 'ReadMembers'; slots: string[] }
  | { type: 'GenerateMaterial'; generation: number }
  | { type: 'StageMembers'; slots: string[] }
  | { type: 'VerifyDuplicates'; wrapAt: string; unwrapAt: string[] }
  | { type: 'PromotePrimary'; slot: string }
  | { type: 'ProveGroup'; primary: string; duplicates: string[] }
  | { type: 'RecordLineage' }
  /** Catch-up: re-import `generation` from escrow into the member (one secure import, after a re-check). */
  | { type: 'ReplayGeneration'; slot: string; generation: number }
  /** Catch-up: unwrap `generation`'s lineage canary at the member. */
  | { type: 'ProveReplayed'; slot: string; generation: number }
  | { type: 'Release' }
  /** Give up (deadline passed before promotion): the runner records the failure and notifies. */
  | { type: 'GiveUp'; reason: string };

/** What the decider wants next. */
export type Decision =
  | { kind: 'command'; command: Command }
  | { kind: 'wait'; untilMs: number; reason: string }
  | { kind: 'finished'; status: 'completed' | 'failed' | 'diverged'; reason?: string };

// ───────────────────────────── Outcomes (runner → decider) ─────────────────────────────

/** What the runner read of one member during `plan`. */
export interface MemberReading {
  slot: string;
  state: number;
  deleted: boolean;
  currentVersionId: KeyVersionId;
  versionCount: number;
  lastRotateAtMs?: number;
}

export type Outcome =
  /** `atClaim`: read by whoever claimed the run, before any worker runs it (the run stays `pending`). */
  | { type: 'MembersRead'; readings: MemberReading[]; atClaim?: boolean }
  | {
      type: 'MaterialEscrowed';
      fingerprint: string;
      escrow: NonNullable<RotationRun['escrow']>;
      /** A `create` run's escrow key, made (or found by its alias) with the material. */
      escrowKey?: EscrowKeyRef;
    }
  | {
      type: 'MemberStaged';
      slot: string;
      versionId: KeyVersionId;
      rotatedAtMs: number;
      via: 'rotate' | 'found' | 'create';
      /** The canary wrapped at the member as the rotate's read-back (names `versionId`). */
      readBack?: CanaryEvidence;
      keyId?: KeyId;
      crn?: KeyCrn;
      keyRingId?: string;
    }
  | { type: 'CanaryPassed'; evidence: CanaryEvidence[] }
  | { type: 'CanaryMismatch'; evidence: CanaryEvidence[]; detail: string }
  | { type: 'LineageRecorded'; hash: string }
  | { type: 'Released' }
  | { type: 'GaveUp'; reason: string }
  /** A member holds a version newer than the run's snapshot that is NOT the run's material (out-of-band rotation). */
  | { type: 'ForeignVersionFound'; slot: string; versionId: KeyVersionId; versionCount: number }
  /** An add-region run reached its target, but the group moved on: replay up to `generation` first. */
  | { type: 'TargetMoved'; generation: number; deadlineAtMs: number }
  /** The step cannot finish yet for a reason that is not a failure (a rotation holds the group): look again then. */
  | { type: 'Deferred'; untilMs: number; reason: string }
  /** A step (or one member of it) failed; `slot` names the member when there is one. */
  | { type: 'StepFailed'; step: Step; slot?: string; error: RunError };
