/**
 * DR drill records: a hash chain of their own per group (`seq` 1, 2, …), each record anchored to the generation
 * chain head it ran against (`lineageHead`), with signed checkpoints of the drill chain head. Generation records and
 * generation checkpoints are not changed by drills. Pure: no I/O, clock or randomness.
 */
import {
  AppError,
  asGroupId,
  type DrillCheckpoint,
  type DrillRecord,
  type GroupId,
  type LineageRecord,
} from '../core/index.js';
import { canonicalJson } from './canonicalJson.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { CheckpointKeyring } from './keys.js';
import { GENESIS_PREV_HASH, hashRecord } from './record.js';
import {
  type SeqChainBreak,
  type SeqChainKind,
  type SeqChainReport,
  type SeqCheckpointCheck,
  signSeqCheckpoint,
  verifySeqChain,
} from './seqChain.js';

/** A drill record without its chain fields. */
export type DrillRecordInput = Omit<DrillRecord, 'prevHash' | 'hash'>;

const HASH_RE = /^[0-9a-f]{64}$/;
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function fail(field: string, message: string): never {
  throw new AppError('VALIDATION_FAILED', `Invalid drill record: ${message}`, { details: { field } });
}

function validate(input: DrillRecordInput): void {
  if (typeof input !== 'object' || input === null) fail('record', 'expected an object');
  if (input.kind !== 'drill') fail('kind', 'kind must be "drill"');
  try {
    asGroupId(input.groupId);
  } catch {
    fail('groupId', 'groupId must be a valid group id');
  }
  if (!Number.isSafeInteger(input.seq) || input.seq < 1) fail('seq', 'seq must be an integer >= 1');
  if (typeof input.drillId !== 'string' || !input.drillId) fail('drillId', 'drillId must be a non-empty string');
  if (!isMs(input.startedAtMs)) fail('startedAtMs', 'startedAtMs must be epoch milliseconds');
  if (!isMs(input.finishedAtMs) || input.finishedAtMs < input.startedAtMs) {
    fail('finishedAtMs', 'finishedAtMs must be epoch milliseconds, not before startedAtMs');
  }
  if (
    input.lineageHead !== null &&
    (!HASH_RE.test(input.lineageHead?.hash ?? '') || !(input.lineageHead.generation >= 1))
  ) {
    fail('lineageHead', 'lineageHead must be null or {generation >= 1, hash: 64 hex digits}');
  }
  if (!Array.isArray(input.members) || input.members.length === 0) fail('members', 'members must list every member');
  if (input.result !== 'passed' && input.result !== 'failed') fail('result', 'result must be passed or failed');
  if (!Array.isArray(input.problems)) fail('problems', 'problems must be an array');
  if (input.result === 'passed' && input.problems.length > 0) fail('result', 'a drill with problems cannot pass');
}

/**
 * Builds the next drill record of a group's drill chain: `prevHash` is the previous drill's `hash` (or the genesis
 * value for the first drill), `hash` is {@link hashRecord} over the rest.
 * @throws {AppError} VALIDATION_FAILED for a malformed input or a `seq` that does not follow `prev`
 * @throws {AppError} CHAIN_BROKEN when `prev` no longer matches its own hash
 */
export function buildDrillRecord(input: DrillRecordInput, prev?: DrillRecord): DrillRecord {
  validate(input);
  let prevHash = GENESIS_PREV_HASH;
  if (prev !== undefined) {
    if (prev.groupId !== input.groupId) fail('groupId', `previous drill belongs to ${prev.groupId}`);
    if (input.seq !== prev.seq + 1) fail('seq', `seq must be ${prev.seq + 1} (previous drill is ${prev.seq})`);
    if (hashRecord(prev as unknown as Record<string, unknown>) !== prev.hash) {
      throw new AppError(
        'CHAIN_BROKEN',
        `Drill ${prev.seq} of ${prev.groupId} does not match its hash; run an audit verify`,
        {
          details: { groupId: prev.groupId, seq: prev.seq },
        },
      );
    }
    prevHash = prev.hash;
  } else if (input.seq !== 1) {
    fail('seq', 'the first drill of a group has seq 1');
  }
  const body = JSON.parse(canonicalJson({ ...input, prevHash })) as Omit<DrillRecord, 'hash'>;
  return { ...body, hash: hashRecord(body) };
}

/**
 * Signs a drill chain head. The statement names `chain: "drills"`, so it can never be mistaken for (or replayed
 * as) a generation checkpoint.
 * @throws {AppError} VALIDATION_FAILED, CONFIG_INVALID as signCheckpoint
 */
export function signDrillCheckpoint(
  statement: { groupId: GroupId; seq: number; headHash: string; signedAtMs: number },
  signer: CheckpointSigner,
): DrillCheckpoint {
  return signSeqCheckpoint('drills', statement, signer);
}

/** One place where the drill chain is not intact. */
export type DrillChainBreak = SeqChainBreak;
export type DrillCheckpointCheck = SeqCheckpointCheck;
/** The outcome of {@link verifyDrillChain}. */
export type DrillChainReport = SeqChainReport;

const DRILLS: SeqChainKind<DrillRecord> = {
  chain: 'drills',
  noun: 'Drill',
  plural: 'drills',
  anchor: (d) =>
    d.lineageHead && {
      ...d.lineageHead,
      message: `Drill ${d.seq} ran against generation ${d.lineageHead.generation} with hash ${d.lineageHead.hash.slice(0, 12)}…, which the generation chain does not hold`,
    },
};

/**
 * Verifies a group's drill chain like `verifyChain` verifies generations: every record matches its hash and links
 * to the previous one (no gap, duplicate, reordering or foreign record), every drill's `lineageHead` names a record
 * of the generation chain with that hash (when `lineage` is given), and each checkpoint's signature and head.
 * Pure and total: bad data is reported, never thrown.
 */
export function verifyDrillChain(
  drills: readonly DrillRecord[],
  checkpoints: readonly DrillCheckpoint[],
  keys: CheckpointKeyring,
  opts: { groupId: string; lineage?: readonly LineageRecord[] },
): DrillChainReport {
  return verifySeqChain(DRILLS, drills, checkpoints, keys, opts);
}
