import { createHash } from 'node:crypto';
import {
  AppError,
  asGroupId,
  type LineageMember,
  type LineageRecord,
  LineageStatus,
  MemberRole,
} from '../core/index.js';
import { canonicalJson } from './canonicalJson.js';
import { type LineageTextKind, lineageTextProblem } from './text.js';

/** `prevHash` of the first record of a chain (generation 1, or the first generation after adoption). */
export const GENESIS_PREV_HASH = '0'.repeat(64);

/** What a caller supplies to {@link buildLineageRecord}: a record without its chain fields. */
export type LineageRecordInput = Omit<LineageRecord, 'prevHash' | 'hash'>;

const HASH_RE = /^[0-9a-f]{64}$/;
const TRIGGER_KINDS = ['schedule', 'event', 'operator'];
const STATUSES: readonly string[] = Object.values(LineageStatus);
const ROLES: readonly string[] = Object.values(MemberRole);

/** SHA-256 hex of a UTF-8 string or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The hash of a lineage record: SHA-256 hex over {@link canonicalJson} of the record without its `hash` field.
 *
 * Top-level fields whose name starts with `_` (CouchDB's `_id`, `_rev`, …) are not part of the record and are
 * ignored, so a document read back from Cloudant hashes the same as the record that was written. Any other extra
 * field IS hashed: store adapters must map documents back to exactly a {@link LineageRecord}.
 *
 * @throws {AppError} VALIDATION_FAILED when the record is not plain JSON data (see {@link canonicalJson}).
 */
export function hashRecord(record: LineageRecord | LineageRecordInput | Record<string, unknown>): string {
  const body: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record)) {
    if (k !== 'hash' && !k.startsWith('_')) body[k] = v;
  }
  return sha256Hex(canonicalJson(body));
}

function fail(field: string, message: string): never {
  throw new AppError('VALIDATION_FAILED', `Invalid lineage record: ${message}`, { details: { field } });
}

const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function checkMember(m: LineageMember, i: number): void {
  const at = `members[${i}]`;
  if (typeof m !== 'object' || m === null) fail(at, `${at} must be an object`);
  if (!ROLES.includes(m.role)) fail(`${at}.role`, `${at}.role must be one of ${ROLES.join(', ')}`);
  for (const f of ['region', 'instanceId', 'keyId', 'crn', 'keyVersionId'] as const) {
    if (!isText(m[f])) fail(`${at}.${f}`, `${at}.${f} must be a non-empty string`);
  }
  if (!isMs(m.rotatedAtMs)) fail(`${at}.rotatedAtMs`, `${at}.rotatedAtMs must be epoch milliseconds`);
  if (!Array.isArray(m.evidence)) fail(`${at}.evidence`, `${at}.evidence must be an array (empty if none yet)`);
  m.evidence.forEach((e, j) => {
    const ev = `${at}.evidence[${j}]`;
    if (typeof e !== 'object' || e === null) fail(ev, `${ev} must be an object`);
    for (const f of ['eventId', 'action', 'initiator', 'outcome'] as const) checkText(`${ev}.${f}`, e[f], 'evidence');
    if (e.correlationId !== undefined) checkText(`${ev}.correlationId`, e.correlationId, 'evidence');
  });
}

/** The one free-text boundary (./text.ts): every free-text value of a record passes it. */
function checkText(field: string, value: unknown, kind: LineageTextKind): void {
  const problem = lineageTextProblem(value, kind);
  if (problem) fail(field, `${field} ${problem}`);
}

function validateInput(input: LineageRecordInput): void {
  if (typeof input !== 'object' || input === null) fail('record', 'expected an object');
  try {
    asGroupId(input.groupId);
  } catch {
    fail('groupId', 'groupId must be a valid group id');
  }
  if (!Number.isSafeInteger(input.generation) || input.generation < 1) {
    fail('generation', 'generation must be an integer >= 1');
  }
  if (!isText(input.fingerprint)) fail('fingerprint', 'fingerprint must be a non-empty string');
  const t = input.trigger;
  if (typeof t !== 'object' || t === null || !TRIGGER_KINDS.includes(t.kind) || !isText(t.by)) {
    fail('trigger', `trigger must be {kind: ${TRIGGER_KINDS.join('|')}, by: non-empty string}`);
  }
  checkText('trigger.by', t.by, 'by');
  if (t.reason !== undefined) checkText('trigger.reason', t.reason, 'reason');
  if (!isText(input.runId)) fail('runId', 'runId must be a non-empty string');
  if (!isMs(input.startedAtMs)) fail('startedAtMs', 'startedAtMs must be epoch milliseconds');
  if (!isMs(input.finishedAtMs) || input.finishedAtMs < input.startedAtMs) {
    fail('finishedAtMs', 'finishedAtMs must be epoch milliseconds, not before startedAtMs');
  }
  if (!Array.isArray(input.members) || input.members.length === 0) {
    fail('members', 'members must list every member of the group');
  }
  input.members.forEach(checkMember);
  const primaries = input.members.filter((m) => m.role === MemberRole.PRIMARY).length;
  if (primaries !== 1) fail('members', `a group has exactly one primary member, found ${primaries}`);
  const crns = new Set(input.members.map((m) => m.crn));
  if (crns.size !== input.members.length) fail('members', 'a member CRN appears twice');
  if (!Array.isArray(input.verification)) fail('verification', 'verification must be an array of canary evidence');
  if (!STATUSES.includes(input.status)) fail('status', `status must be one of ${STATUSES.join(', ')}`);
  if (input.notes !== undefined && (!Array.isArray(input.notes) || !input.notes.every((n) => typeof n === 'string'))) {
    fail('notes', 'notes must be an array of strings');
  }
  for (const [i, n] of (input.notes ?? []).entries()) checkText(`notes[${i}]`, n, 'note');
}

/**
 * Builds the next lineage record of a chain: validates the input, sets `prevHash` (the previous record's `hash`, or
 * {@link GENESIS_PREV_HASH} when there is no previous record — generation 1, or the first generation recorded after
 * adopting existing keys, which may be any n ≥ 1) and computes `hash` with {@link hashRecord}.
 *
 * The result is a fresh plain-data copy (fields with `undefined` dropped), so what is stored is exactly what was hashed.
 *
 * @param input - the record without `prevHash`/`hash`.
 * @param prev - the current chain head, when there is one.
 * @throws {AppError} VALIDATION_FAILED when a field is missing or malformed, or when `prev` is of another group or
 *   `input.generation` is not `prev.generation + 1`.
 * @throws {AppError} CHAIN_BROKEN when `prev` no longer matches its own hash (the head was altered; a new record
 *   must not be chained onto it).
 */
export function buildLineageRecord(input: LineageRecordInput, prev?: LineageRecord): LineageRecord {
  validateInput(input);
  let prevHash = GENESIS_PREV_HASH;
  if (prev !== undefined) {
    if (prev.groupId !== input.groupId) {
      fail('groupId', `previous record belongs to group ${prev.groupId}, not ${input.groupId}`);
    }
    if (input.generation !== prev.generation + 1) {
      fail('generation', `generation must be ${prev.generation + 1} (previous is ${prev.generation})`);
    }
    if (!HASH_RE.test(prev.hash) || hashRecord(prev) !== prev.hash) {
      throw new AppError(
        'CHAIN_BROKEN',
        `The chain head (generation ${prev.generation} of ${prev.groupId}) does not match its hash; run an audit verify before recording more generations`,
        { details: { groupId: prev.groupId, generation: prev.generation } },
      );
    }
    prevHash = prev.hash;
  }
  const body = JSON.parse(canonicalJson({ ...input, prevHash })) as Omit<LineageRecord, 'hash'>;
  return { ...body, hash: hashRecord(body) };
}
