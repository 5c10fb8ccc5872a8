import type { GroupId, InstanceId, KeyCrn, KeyId, KeyVersionId, RegionId, RunId } from './ids.js';

/** A member's role in its group. */
export const MemberRole = { PRIMARY: 'primary', DUPLICATE: 'duplicate' } as const;
export type MemberRole = (typeof MemberRole)[keyof typeof MemberRole];

/** One Key Protect root key of a group. */
export interface Member {
  role: MemberRole;
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
  crn: KeyCrn;
  /** The Key Protect key ring the key lives in (sent as `X-Kms-Key-Ring`); absent for groups stored before rings. */
  keyRingId?: string;
}

/** Where lockstep wraps each generation's material (a root key only lockstep may use). */
export interface EscrowKeyRef {
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
  crn: KeyCrn;
}

/** When a group is due. Exactly one of `cron` / `intervalMs` is set. */
export interface Schedule {
  /** Five- or six-field cron expression, evaluated in `timeZone`. */
  cron?: string;
  /** Fixed interval since the last completed rotation. */
  intervalMs?: number;
  /** IANA time zone for `cron` and `window` (default UTC). */
  timeZone?: string;
  /** Optional daily window, e.g. {start:'01:00', end:'05:00'}; rotations start only inside it. */
  window?: { start: string; end: string };
  /** Rotate regardless of cron/window once the current generation is older than this. */
  maxAgeMs?: number;
  /** Set false to pause scheduled rotations (operators can still rotate). */
  enabled?: boolean;
}

/** Health of a group as operators see it. */
export const GroupStatus = {
  HEALTHY: 'healthy',
  ROTATING: 'rotating',
  DEGRADED: 'degraded',
  DIVERGED: 'diverged',
  FAILED: 'failed',
  /** The latest DR drill failed: a switch-over would not work now (see `lastDrill`). */
  DRILL_FAILED: 'drill-failed',
} as const;
export type GroupStatus = (typeof GroupStatus)[keyof typeof GroupStatus];

/** A group: one primary + N duplicates that must hold identical material. */
export interface Group {
  id: GroupId;
  name: string;
  description?: string;
  members: Member[];
  escrow: EscrowKeyRef;
  schedule: Schedule;
  status: GroupStatus;
  statusReason?: string;
  /** Latest generation every member holds (0 before creation completes). */
  currentGeneration: number;
  /** When the current generation was completed. */
  lastRotatedAtMs?: number;
  /** Next time the scheduler should look at the group (index-backed query). */
  nextDueAtMs?: number;
  /** Run currently working on the group, if any. */
  activeRunId?: RunId;
  createdAtMs: number;
  updatedAtMs: number;
  /** The latest verification of the group against Key Protect (members' current versions and states). */
  lastVerification?: Verification;
  /**
   * A verification someone asked for (an Activity Tracker alert, a foreign event) and nobody has done yet: the
   * scheduler tick honours it, so a wake-up is never lost when the events function could not verify at once.
   */
  verificationRequestedAtMs?: number;
  /** DR drill schedule (run by the scheduler tick). */
  drillSchedule?: DrillSchedule;
  /** The latest DR drill. */
  lastDrill?: DrillSummary;
  /**
   * When the scheduler verifies the group next on its own (periodic verification, index-backed query; set by every
   * verification and finished run). Independent of `nextDueAtMs`, which stays the next rotation check.
   */
  verifyDueAtMs?: number;
  /**
   * The first generation whose material lockstep escrowed (absent: 1). An adopted group's is 2: its material was
   * never seen, so its first lockstep rotation gives it escrow (which `region add` and catch-up replay from).
   */
  escrowedFromGeneration?: number;
}

/** Outcome of one verification of a group against Key Protect. */
export interface Verification {
  atMs: number;
  /** What asked for it: `operator:<id>`, `event:<id>`, `alert:<id>`, `tick:<id>` (bounded text). */
  trigger: string;
  /** `ok`: every member active at its recorded version; `problems`: drift or a member not usable; `incomplete`: a member could not be read. */
  result: 'ok' | 'problems' | 'incomplete';
  problems: string[];
}

/** What started a run or generation. */
export interface Trigger {
  kind: 'schedule' | 'event' | 'operator';
  /** Who or what: a subject (iam id), a cron tick id, an event id. */
  by: string;
  reason?: string;
}

/** Activity Tracker evidence attached to a member's rotation. */
export interface AtEvidence {
  eventId: string;
  action: string;
  eventTimeMs: number;
  initiator: string;
  correlationId?: string;
  outcome: string;
}

/**
 * Activity Tracker evidence that arrived after its generation's lineage record was written: a record of its own in
 * the group's evidence chain (`seq` 1, 2, …, hash-chained like the generation records), naming the generation and
 * that record's hash. The generation record is never rewritten; the evidence is never lost on the run.
 */
export interface EvidenceRecord {
  kind: 'evidence';
  groupId: GroupId;
  /** 1, 2, … per group: the evidence chain's position. */
  seq: number;
  /** The generation the evidence belongs to, and its lineage record's hash. */
  generation: number;
  generationHash: string;
  runId: RunId;
  /** The member the event names. */
  crn: KeyCrn;
  evidence: AtEvidence;
  recordedAtMs: number;
  prevHash: string;
  hash: string;
}

/** One member's part of a generation. */
export interface LineageMember {
  role: MemberRole;
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
  crn: KeyCrn;
  keyVersionId: KeyVersionId;
  rotatedAtMs: number;
  evidence: AtEvidence[];
}

/** A canary: a random DEK wrapped at one member and unwrapped at another. The DEK itself is never kept. */
export interface CanaryEvidence {
  wrappedAt: KeyCrn;
  unwrappedAt: KeyCrn[];
  /** Ciphertext returned by the wrapping member (opaque, safe to keep: it only unwraps with the material). */
  ciphertext: string;
  /** SHA-256 hex of the canary plaintext, so a later unwrap can be checked without keeping the DEK. */
  plaintextSha256: string;
  aad: string[];
  /** Version each unwrapping member reported, by CRN. */
  reportedVersions: Record<string, string>;
  ok: boolean;
  atMs: number;
}

export const LineageStatus = {
  COMPLETE: 'complete',
  DEGRADED: 'degraded',
  DIVERGED: 'diverged',
  SUPERSEDED: 'superseded',
} as const;
export type LineageStatus = (typeof LineageStatus)[keyof typeof LineageStatus];

/** The audit record of one generation of one group (design.md "Lineage record"). */
export interface LineageRecord {
  groupId: GroupId;
  generation: number;
  fingerprint: string;
  trigger: Trigger;
  runId: RunId;
  startedAtMs: number;
  finishedAtMs: number;
  members: LineageMember[];
  verification: CanaryEvidence[];
  status: LineageStatus;
  /** Free-text notes, e.g. a foreign version found on one member. */
  notes?: string[];
  prevHash: string;
  hash: string;
}

/** A signed statement of a chain head. */
export interface Checkpoint {
  groupId: GroupId;
  generation: number;
  headHash: string;
  signedAtMs: number;
  keyId: string;
  algorithm: 'Ed25519';
  /** base64 Ed25519 signature over the canonical JSON of the other fields. */
  signature: string;
}

// ───────────────────────────── DR drills ─────────────────────────────

/** Health of a member as the latest DR drill found it. */
export const DrillMemberHealth = { OK: 'ok', UNREACHABLE: 'unreachable', FAILED: 'failed' } as const;
export type DrillMemberHealth = (typeof DrillMemberHealth)[keyof typeof DrillMemberHealth];

/** One member's part of a DR drill. */
export interface DrillMember {
  role: MemberRole;
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
  crn: KeyCrn;
  /** The Key Protect URLs an application would use for this member. */
  endpoints: { public: string; private: string | null };
  health: DrillMemberHealth;
  /** Key state as read (active, suspended, deactivated, destroyed), absent when unreachable. */
  keyState?: string;
  currentVersionId?: string;
  /** The 1-rotation-per-hour rule: when the member last rotated and when it may rotate again. */
  lastRotateAtMs?: number;
  earliestRotationAtMs?: number;
  /** Stored canaries of each retained generation unwrapped here (ok = same DEK as recorded). */
  canaries: { generation: number; ok: boolean; keyVersionId?: string; error?: string }[];
  /** The fresh DEK wrapped at the primary, unwrapped here through the failover client (duplicates only). */
  switchover: { ok: boolean; latencyMs?: number; keyVersionId?: string; error?: string } | null;
}

/** The audit record of one DR drill: hash-chained per group (a chain of its own, anchored to the generation chain). */
export interface DrillRecord {
  kind: 'drill';
  groupId: GroupId;
  /** 1, 2, … per group: the drill chain's position. */
  seq: number;
  drillId: string;
  trigger: Trigger;
  startedAtMs: number;
  finishedAtMs: number;
  /** The generation chain head the drill ran against (null before the first generation is recorded). */
  lineageHead: { generation: number; hash: string } | null;
  /** Generations whose stored canaries were unwrapped at every member (the retention window). */
  generationsChecked: number[];
  /** Fresh DEK wrapped at the primary, unwrapped with the primary treated as down. */
  switchover: {
    wrappedAt: KeyCrn | null;
    keyVersionId: string | null;
    ciphertext: string | null;
    plaintextSha256: string | null;
    aad: string[];
    /** Time the failover client needed to answer with the primary treated as down (null when it could not). */
    switchoverMs: number | null;
    answeredBy: KeyCrn | null;
  };
  members: DrillMember[];
  result: 'passed' | 'failed';
  problems: string[];
  prevHash: string;
  hash: string;
}

/**
 * A signed head of a chain of its own per group (`seq` 1, 2, …): DR drills (`chain: "drills"`) or late evidence
 * (`chain: "evidence"`). The chain name is signed, so it is never mistaken for a generation checkpoint or one of the
 * other chain.
 */
export interface SeqCheckpoint<C extends 'drills' | 'evidence' = 'drills' | 'evidence'> {
  chain: C;
  groupId: GroupId;
  seq: number;
  headHash: string;
  signedAtMs: number;
  keyId: string;
  algorithm: 'Ed25519';
  /** base64 Ed25519 signature over the canonical JSON of the other fields. */
  signature: string;
}

/** A signed statement of a drill chain head (a separate statement type from generation checkpoints). */
export type DrillCheckpoint = SeqCheckpoint<'drills'>;

/** A signed statement of an evidence chain head. */
export type EvidenceCheckpoint = SeqCheckpoint<'evidence'>;

/** A group's drill schedule (absent or disabled: no scheduled drills; operators can always run one). */
export interface DrillSchedule {
  intervalMs: number;
  enabled?: boolean;
}

/** What a group remembers of its latest drill (for status, the timeline page and the endpoints' health). */
export interface DrillSummary {
  seq: number;
  drillId: string;
  atMs: number;
  result: 'passed' | 'failed';
  problems: string[];
  hash: string;
  members: { crn: KeyCrn; health: DrillMemberHealth }[];
}
