/**
 * The rotation use cases: one service behind every trigger (cron tick, Activity Tracker events, operator API, CLI,
 * tests). Implemented by {@link createRotationService} in `rotationService.ts`.
 *
 * Contract notes for callers:
 * - Every method validates its input and throws a typed `AppError` (`VALIDATION_FAILED`, `GROUP_NOT_FOUND`, …)
 *   before changing anything.
 * - `rotateNow` only *claims* the group and persists a pending run; `advanceRun` does the work. A caller that wants
 *   the rotation done now calls both; the scheduler tick resumes whatever is left (`listUnfinished`).
 * - Nothing returned ever contains key material, tokens or escrow plaintext.
 */
import type {
  AtEvidence,
  CanaryEvidence,
  Clock,
  EscrowKeyRef,
  Group,
  GroupId,
  GroupStatus,
  InstanceId,
  KeyCrn,
  KeyVersionId,
  LineageRecord,
  Logger,
  MemberRole,
  Random,
  RegionId,
  RunId,
  Schedule,
  Trigger,
} from '../core/index.js';
import type { RotationRun, Step } from '../rotation/index.js';
import type { OperatorRuns } from './operatorRuns.js';
import type { KeyProtectPort, Notifier, Stores } from './ports.js';

/** Tunables of the rotation service. Every field has a default (see `DEFAULT_ROTATION_CONFIG`). */
export interface RotationConfig {
  /** Key Protect allows one rotation per key per hour. The dev demo shortens it together with the emulator. */
  rotationMinIntervalMs: number;
  /** Key Protect instances staged in parallel (members of one instance go one after another: one import token each). */
  stageConcurrency: number;
  /** TTL of the group lease `group:<id>` (renewed while a run advances). */
  groupLeaseTtlMs: number;
  /** TTL of the import-token lease `token:<region>:<instanceId>` (covers token create → get → rotate). */
  tokenLeaseTtlMs: number;
  /** A run that has not promoted its primary this long after it started fails with an explanation. */
  runDeadlineMs: number;
  /** Backoff for a blocked member or a failed step: base × 2^(attempt-1), capped. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Where escrow keys are created when a group is created without one (default: the primary's instance). */
  escrowInstance?: { region: RegionId; instanceId: InstanceId };
  /** Ed25519 private key (PKCS#8 PEM or base64) and optionally its expected id: signs a checkpoint per generation. */
  checkpointSigning?: { privateKey: string; keyId?: string };
  /** Name prefix of the keys lockstep creates. */
  keyNamePrefix: string;
  /** Every group is verified against Key Protect by the scheduler at most this often (0: never on its own). */
  verifyIntervalMs: number;
}

export const DEFAULT_ROTATION_CONFIG: RotationConfig = {
  rotationMinIntervalMs: 3_600_000,
  stageConcurrency: 8,
  groupLeaseTtlMs: 120_000,
  tokenLeaseTtlMs: 120_000,
  runDeadlineMs: 24 * 3_600_000,
  retryBaseMs: 30_000,
  retryMaxMs: 30 * 60_000,
  keyNamePrefix: 'lockstep',
  verifyIntervalMs: 6 * 3_600_000,
};

/** Dependencies of {@link createRotationService}. */
export interface RotationServiceDeps {
  kp: KeyProtectPort;
  stores: Stores;
  clock: Clock;
  random: Random;
  logger: Logger;
  notifier?: Notifier;
  config?: Partial<RotationConfig>;
  /** Waits between polls of a busy lease (default: a real timer; tests inject their own). */
  sleep?: (ms: number) => Promise<void>;
  /** @internal Test hook: called after each persisted step; throwing from it simulates a crash. */
  afterPersist?: (run: RotationRun, step: Step) => void | Promise<void>;
}

/** Where a new member key goes. */
export interface MemberPlacement {
  region: RegionId;
  instanceId: InstanceId;
  /** Create the key in this key ring of the instance (it must exist); default `default`. */
  keyRingId?: string;
}

export interface CreateGroupInput {
  id: string;
  name: string;
  description?: string;
  schedule: Schedule;
  primary: MemberPlacement;
  duplicates: MemberPlacement[];
  /** An existing escrow root key; otherwise one is created with `createGeneratedRootKey`. */
  escrow?: EscrowKeyRef;
  trigger: Trigger;
}

export interface AdoptGroupInput {
  id: string;
  name: string;
  description?: string;
  schedule: Schedule;
  primaryCrn: string;
  duplicateCrns: string[];
  escrow?: EscrowKeyRef;
  trigger: Trigger;
}

/** Dry-run view of one member. */
export interface MemberPlan {
  role: MemberRole;
  crn: KeyCrn;
  region: RegionId;
  state: 'pre-active' | 'active' | 'suspended' | 'deactivated' | 'destroyed' | 'unreachable';
  currentVersionId?: KeyVersionId;
  lastRotateAtMs?: number;
  /** Earliest time Key Protect will accept a rotation of this member. */
  earliestRotationAtMs?: number;
  problems: string[];
}

/** What `rotateNow` would do, without doing it. */
export interface RotationPlan {
  groupId: GroupId;
  nextGeneration: number;
  /** Earliest time every member may rotate (max over members). */
  earliestStartAtMs: number;
  canStartNow: boolean;
  activeRunId?: RunId;
  members: MemberPlan[];
  /** Ordered steps the run would take. */
  steps: string[];
  problems: string[];
}

/** Result of advancing a run. */
export interface AdvanceResult {
  runId: RunId;
  status: RotationRun['status'];
  step: Step;
  /** Why the run stopped here (waiting for the 1 h rule, a blocked member, the caller's deadline, …). */
  reason?: string;
  nextAttemptAtMs?: number;
  /** Why this worker stopped early (typed, for callers that act on it; `reason` is for people). */
  stopped?: 'lease-held' | 'lease-lost' | 'taken-over' | 'caller-deadline';
}

/** Live probe of one generation on one member. */
export interface GenerationProbe {
  generation: number;
  crn: KeyCrn;
  ok: boolean;
  reportedVersionId?: KeyVersionId;
  expectedVersionId?: KeyVersionId;
  error?: string;
}

/** One member as a verification read it from Key Protect. */
export interface MemberCheck {
  crn: KeyCrn;
  role: MemberRole;
  region: RegionId;
  state?: 'active' | 'pre-active' | 'suspended' | 'deactivated' | 'destroyed' | 'unreachable';
  currentVersionId?: KeyVersionId;
  /** What the lineage records for the member (absent: nothing recorded — drift). */
  expectedVersionId?: KeyVersionId;
  ok: boolean;
}

export interface VerifyResult {
  groupId: GroupId;
  /** True when every member is active at its recorded version (and every probed generation holds). */
  ok: boolean;
  result: 'ok' | 'problems' | 'incomplete';
  problems: string[];
  members: MemberCheck[];
  probes: GenerationProbe[];
  /** Generations whose canary could not be checked (e.g. adopted before evidence existed). */
  unchecked: number[];
  /** The group's status after the verification. */
  status: GroupStatus;
  /** A healing rotation scheduled because of drift. */
  healRunId?: RunId;
  /** A catch-up run scheduled for a member that lacks recorded generations (regional recovery). */
  catchUpRunId?: RunId;
}

/** An out-of-band change to a member, seen in Activity Tracker. */
export interface ForeignChange {
  crn: string;
  action: string;
  eventId: string;
  eventTimeMs: number;
  initiator?: string;
}

export interface AddRegionInput {
  region: RegionId;
  instanceId: InstanceId;
  trigger: Trigger;
}

/** The rotation use cases. */
export interface RotationService {
  /** Creates the primary and duplicates from one fresh material via secure import, escrowed as generation 1. */
  createGroup(input: CreateGroupInput): Promise<{ group: Group; lineage: LineageRecord }>;
  /** Adopts existing keys that already hold identical material (proved by canary); lineage starts there. */
  adoptGroup(input: AdoptGroupInput): Promise<{ group: Group; lineage: LineageRecord }>;
  /** Dry run: what a rotation would do, when each member may next rotate, token and health checks. Changes nothing. */
  plan(groupId: string): Promise<RotationPlan>;
  /**
   * Claims the group and persists a pending run for the next generation; returns its id.
   * @throws {AppError} GROUP_NOT_FOUND, RUN_IN_PROGRESS, ROTATION_TOO_SOON, MEMBER_NOT_ACTIVE
   */
  rotateNow(groupId: string, opts: { trigger: Trigger; force?: boolean }): Promise<{ runId: RunId }>;
  /**
   * `rotateNow` then at once a pass over the new run (`advanceRun`), as the scheduler starts a rotation: for a healthy
   * group, while the claim reads the members it also escrows the new material and fetches the duplicates' import
   * tokens, so the pass starts at stage with both. Throws what `rotateNow` throws (nothing is left held then).
   */
  startRotation(
    groupId: string,
    opts: { trigger: Trigger; deadlineAtMs: number; holder: string },
  ): Promise<{ runId: RunId; result: AdvanceResult }>;
  /** Resumes a run under the group lease until done, blocked/waiting, or `deadlineAtMs` (the caller's budget). */
  advanceRun(runId: string, opts: { deadlineAtMs: number; holder: string }): Promise<AdvanceResult>;
  /** Re-opens a failed run (e.g. after the region came back) with a fresh deadline, then leaves it pending. */
  resume(runId: string, opts: { trigger: Trigger }): Promise<AdvanceResult>;
  /**
   * Reads every member from Key Protect and compares its current version with the lineage (and its state); drift
   * marks the group diverged and schedules a heal, a member not active marks it degraded, a clean result clears
   * what an earlier verification found. `probes` (default true) also probes every recorded generation by canary.
   */
  verify(groupId: string, opts?: { trigger?: string; probes?: boolean }): Promise<VerifyResult>;
  /** Adds a duplicate in a new region: generation 1's material, then every escrowed generation replayed in order. */
  addRegion(groupId: string, input: AddRegionInput): Promise<{ runId: RunId }>;
  /** Brings members that miss generations forward from escrow, one generation per allowed hour. */
  catchUp(
    groupId: string,
    opts: { deadlineAtMs: number; holder: string },
  ): Promise<{ advanced: number; pending: number }>;
  getRun(runId: string): Promise<RotationRun>;
  /** Operator: re-opens a run so the next tick advances it at once (`operatorRuns.ts`). */
  retryRun: OperatorRuns['retryRun'];
  /** Operator: stops a rotation run safely before promotion and records what it left (`operatorRuns.ts`). */
  stopRun: OperatorRuns['stopRun'];
  /** Attaches Activity Tracker evidence of lockstep's own action to a run's member (by run id, or by member CRN). */
  attachEvidence(target: { crn: string; runId?: string }, evidence: AtEvidence): Promise<{ runId?: RunId }>;
  /**
   * A change someone else made was reported (an event that is not lockstep's own): verifies the group against Key
   * Protect; only what that reading finds changes the group. The change's fields are claims and only label it.
   */
  markForeignChange(groupId: string, change: ForeignChange): Promise<{ status: GroupStatus; healRunId?: RunId }>;
  /** Finds the group a member CRN belongs to (events handler). */
  findGroupByMember(crn: string): Promise<Group | undefined>;
}

export type { CanaryEvidence };
