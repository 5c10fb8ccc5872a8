/**
 * Ports the use cases drive. Adapters implement them: `src/keyprotect` (Key Protect), `src/store` (Cloudant).
 * Ports speak domain types only: no SDK types, no HTTP.
 */
import type { GroupId, InstanceId, KeyCrn, KeyId, KeyVersionId, RegionId, RunId } from '../core/ids.js';
import type { Checkpoint, Group, LineageRecord } from '../core/model.js';
import type { KeyMaterial } from '../core/sensitive.js';

// ───────────────────────────── Key Protect ─────────────────────────────

/** Addresses one root key. */
export interface KeyRef {
  region: RegionId;
  instanceId: InstanceId;
  keyId: KeyId;
}

/** Key Protect key states (NIST SP 800-57). */
export const KeyStateCode = { ACTIVE: 1, SUSPENDED: 2, DEACTIVATED: 3, DESTROYED: 5 } as const;
export type KeyStateCode = (typeof KeyStateCode)[keyof typeof KeyStateCode];

/** What lockstep reads of a key. */
export interface KeyInfo {
  id: KeyId;
  crn: KeyCrn;
  name: string;
  state: KeyStateCode;
  imported: boolean;
  extractable: boolean;
  deleted: boolean;
  currentVersionId: KeyVersionId;
  currentVersionCreatedAtMs: number;
  /** Absent if the key was never rotated. */
  lastRotateAtMs?: number;
  creationAtMs: number;
  aliases: string[];
}

export interface KeyVersionInfo {
  id: KeyVersionId;
  createdAtMs: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Sent as `Correlation-Id`; shows up in Activity Tracker events. */
  correlationId?: string;
  /** Abort the call (e.g. the function deadline). */
  signal?: AbortSignal;
}

export interface CreateImportedKeyInput {
  region: RegionId;
  instanceId: InstanceId;
  name: string;
  description?: string;
  aliases?: string[];
  material: KeyMaterial;
}

export interface WrapResult {
  ciphertext: string;
  keyVersionId: KeyVersionId;
}

export interface UnwrapResult {
  /** The DEK. Callers hash or compare it and drop it; never log it. */
  plaintext: Buffer;
  keyVersionId: KeyVersionId;
  rewrappedCiphertext?: string;
  rewrappedKeyVersionId?: KeyVersionId;
}

/**
 * The narrow Key Protect port. Secure import (import token create → get → RSA-OAEP-SHA256 seal + AES-GCM nonce) is
 * inside `createImportedKey` and `rotateWithMaterial`; the caller serialises them per instance (import-token lease).
 * `rotateWithMaterial` is never retried by the adapter: an ambiguous failure is decided by the caller after
 * `listVersions`.
 */
export interface KeyProtectPort {
  getKey(ref: KeyRef, opts?: CallOptions): Promise<KeyInfo>;
  /** All versions, newest first. */
  listVersions(ref: KeyRef, opts?: CallOptions): Promise<KeyVersionInfo[]>;
  createImportedKey(input: CreateImportedKeyInput, opts?: CallOptions): Promise<KeyInfo>;
  rotateWithMaterial(ref: KeyRef, material: KeyMaterial, opts?: CallOptions): Promise<void>;
  wrap(ref: KeyRef, plaintext: Buffer, aad: string[], opts?: CallOptions): Promise<WrapResult>;
  unwrap(ref: KeyRef, ciphertext: string, aad: string[], opts?: CallOptions): Promise<UnwrapResult>;
}

// ───────────────────────────── Store ─────────────────────────────

/** A stored value and its revision (`_rev`); updates must present the revision they read. */
export interface Versioned<T> {
  value: T;
  rev: string;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page; absent on the last page. */
  next?: string;
}

export interface GroupRepository {
  /** @throws {AppError} GROUP_EXISTS */
  create(group: Group): Promise<Versioned<Group>>;
  /** @throws {AppError} GROUP_NOT_FOUND */
  get(id: GroupId): Promise<Versioned<Group>>;
  find(id: GroupId): Promise<Versioned<Group> | undefined>;
  /** @throws {AppError} STORE_CONFLICT (details.currentRev) when `rev` is stale */
  update(group: Group, rev: string): Promise<Versioned<Group>>;
  /** Read-modify-write with conflict retry; `mutate` must be pure. */
  mutate(id: GroupId, mutate: (g: Group) => Group): Promise<Versioned<Group>>;
  list(opts?: { limit?: number; cursor?: string }): Promise<Page<Group>>;
  /** Groups whose `nextDueAtMs` ≤ `nowMs`, earliest first (index-backed). */
  findDue(nowMs: number, limit: number): Promise<Group[]>;
}

/** Run statuses that the scheduler resumes. */
export const RunStatus = {
  PENDING: 'pending',
  RUNNING: 'running',
  DEGRADED: 'degraded',
  COMPLETED: 'completed',
  FAILED: 'failed',
  DIVERGED: 'diverged',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];
export const UNFINISHED_RUN_STATUSES: readonly RunStatus[] = ['pending', 'running', 'degraded'];

/** Fields every persisted run has (indexed). The saga's own state lives in the rest of the document. */
export interface RunRecordBase {
  id: RunId;
  groupId: GroupId;
  generation: number;
  kind: string;
  status: RunStatus;
  createdAtMs: number;
  updatedAtMs: number;
  /** Not before this time (backoff, 1 h rule). */
  nextAttemptAtMs?: number;
}

export interface RunRepository<R extends RunRecordBase = RunRecordBase> {
  /** @throws {AppError} STORE_CONFLICT if the id exists */
  create(run: R): Promise<Versioned<R>>;
  /** @throws {AppError} RUN_NOT_FOUND */
  get(id: RunId): Promise<Versioned<R>>;
  /** @throws {AppError} STORE_CONFLICT (details.currentRev) when `rev` is stale */
  save(run: R, rev: string): Promise<Versioned<R>>;
  /** Unfinished runs (pending/running/degraded) whose nextAttemptAtMs ≤ nowMs, oldest first. */
  listUnfinished(nowMs: number, limit: number): Promise<R[]>;
  /** Runs of a group, newest first. */
  listByGroup(groupId: GroupId, limit: number): Promise<R[]>;
}

/** An exclusive, expiring claim. `fence` grows by one with every new holder. */
export interface Lease {
  name: string;
  holder: string;
  fence: number;
  expiresAtMs: number;
  rev: string;
}

export interface LeaseRepository {
  /** Takes the lease if free or expired; `undefined` if someone else holds it. */
  acquire(name: string, holder: string, ttlMs: number, nowMs: number): Promise<Lease | undefined>;
  /** Extends a held lease. @throws {AppError} LEASE_LOST if it expired and was taken, or was released */
  renew(lease: Lease, ttlMs: number, nowMs: number): Promise<Lease>;
  /** Releases if still held by this holder and fence; no-op otherwise. */
  release(lease: Lease): Promise<void>;
  /** @throws {AppError} LEASE_LOST unless `lease` is still current (same holder and fence, not expired) */
  assertHeld(lease: Lease, nowMs: number): Promise<void>;
}

export interface ProcessedEventRepository {
  /** Records an event id; false if it was already recorded (a duplicate). */
  markProcessed(eventId: string, info: { source: string; receivedAtMs: number; groupId?: GroupId }): Promise<boolean>;
}

export interface LineageRepository {
  /** Appends a record; generation must be head+1. @throws {AppError} STORE_CONFLICT if that generation exists */
  append(record: LineageRecord): Promise<void>;
  head(groupId: GroupId): Promise<LineageRecord | undefined>;
  /** @throws {AppError} GENERATION_NOT_FOUND */
  get(groupId: GroupId, generation: number): Promise<LineageRecord>;
  /** Newest first. `cursor` is opaque (from a previous page). Times filter on finishedAtMs. */
  list(
    groupId: GroupId,
    opts: { limit: number; cursor?: string; sinceMs?: number; untilMs?: number },
  ): Promise<Page<LineageRecord>>;
  /** The record holding a member's Key Protect version. */
  findByKeyVersion(keyVersionId: KeyVersionId): Promise<LineageRecord | undefined>;
  /** Every record in (groupId, generation) order; one group or all. */
  exportAll(groupId?: GroupId): AsyncIterable<LineageRecord>;
  /** Whole chain of one group, oldest first. */
  chain(groupId: GroupId): Promise<LineageRecord[]>;
}

export interface CheckpointRepository {
  put(checkpoint: Checkpoint): Promise<void>;
  latest(groupId: GroupId): Promise<Checkpoint | undefined>;
  list(groupId: GroupId): Promise<Checkpoint[]>;
}

/** Everything the use cases persist. */
export interface Stores {
  groups: GroupRepository;
  runs: RunRepository;
  leases: LeaseRepository;
  events: ProcessedEventRepository;
  lineage: LineageRepository;
  checkpoints: CheckpointRepository;
}

/** Outgoing notifications (CloudEvents) — Event Notifications or a webhook. */
export interface Notifier {
  publish(event: { type: string; subject: string; data: Record<string, unknown> }): Promise<void>;
}

/** Escrow ciphertext as stored with a run (never the material). */
export interface EscrowedMaterial {
  keyCrn: KeyCrn;
  ciphertext: string;
  aad: string[];
  fingerprint: string;
}
