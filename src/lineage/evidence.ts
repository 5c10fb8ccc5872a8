/**
 * Late Activity Tracker evidence: a hash chain of its own per group (`seq` 1, 2, …), each record naming the
 * generation it belongs to and that generation record's hash. Generation records are never rewritten by evidence.
 * Pure: no I/O, clock or randomness.
 */
import {
  AppError,
  asGroupId,
  type EvidenceCheckpoint,
  type EvidenceRecord,
  type GroupId,
  type LineageRecord,
} from '../core/index.js';
import type { CheckpointSigner } from './checkpoint.js';
import type { CheckpointKeyring } from './keys.js';
import { GENESIS_PREV_HASH, hashRecord } from './record.js';
import { type SeqChainKind, type SeqChainReport, signSeqCheckpoint, verifySeqChain } from './seqChain.js';
import { checkLineageText } from './text.js';

/** An evidence record without its chain fields. */
export type EvidenceRecordInput = Omit<EvidenceRecord, 'prevHash' | 'hash'>;

const HASH_RE = /^[0-9a-f]{64}$/;

function fail(field: string, message: string): never {
  throw new AppError('VALIDATION_FAILED', `Invalid evidence record: ${message}`, { details: { field } });
}

function validate(input: EvidenceRecordInput): void {
  if (typeof input !== 'object' || input === null) fail('record', 'expected an object');
  if (input.kind !== 'evidence') fail('kind', 'kind must be "evidence"');
  try {
    asGroupId(input.groupId);
  } catch {
    fail('groupId', 'groupId must be a valid group id');
  }
  if (!Number.isSafeInteger(input.seq) || input.seq < 1) fail('seq', 'seq must be an integer >= 1');
  if (!Number.isSafeInteger(input.generation) || input.generation < 1) fail('generation', 'generation must be >= 1');
  if (!HASH_RE.test(input.generationHash ?? '')) fail('generationHash', 'generationHash must be 64 hex digits');
  if (!Number.isSafeInteger(input.recordedAtMs) || input.recordedAtMs < 0) fail('recordedAtMs', 'epoch ms');
  const e = input.evidence;
  if (typeof e !== 'object' || e === null) fail('evidence', 'evidence must be an object');
  // What an event said is the attacker's text until proven otherwise: the same rules as any lineage text.
  for (const f of ['eventId', 'action', 'initiator', 'outcome'] as const)
    checkLineageText(`evidence.${f}`, e[f], 'evidence');
  if (e.correlationId !== undefined) checkLineageText('evidence.correlationId', e.correlationId, 'evidence');
  if (!Number.isSafeInteger(e.eventTimeMs)) fail('evidence.eventTimeMs', 'epoch ms');
}

/**
 * Builds the next record of a group's evidence chain: `prevHash` is the previous record's `hash` (or the genesis
 * value), `hash` is {@link hashRecord} over the rest.
 * @throws {AppError} VALIDATION_FAILED for a malformed input or a `seq` that does not follow `prev`
 */
export function buildEvidenceRecord(input: EvidenceRecordInput, prev?: EvidenceRecord): EvidenceRecord {
  validate(input);
  if (prev !== undefined) {
    if (prev.groupId !== input.groupId) fail('groupId', `previous evidence belongs to ${prev.groupId}`);
    if (input.seq !== prev.seq + 1) fail('seq', `seq must be ${prev.seq + 1} (previous evidence is ${prev.seq})`);
  } else if (input.seq !== 1) fail('seq', 'the first evidence record has seq 1');
  const body = { ...input, prevHash: prev?.hash ?? GENESIS_PREV_HASH };
  return { ...body, hash: hashRecord(body) };
}

/** What {@link verifyEvidenceChain} found (the drill chain's report shape). */
export type EvidenceChainReport = SeqChainReport;

const EVIDENCE: SeqChainKind<EvidenceRecord> = {
  chain: 'evidence',
  noun: 'Evidence record',
  plural: 'evidence records',
  anchor: (r) => ({
    generation: r.generation,
    hash: r.generationHash,
    message: `Evidence record ${r.seq} names generation ${r.generation} with hash ${String(r.generationHash).slice(0, 12)}…, which the generation chain does not hold`,
  }),
};

/**
 * Verifies a group's evidence chain (any order: gaps, duplicates and reordering are reported): every hash, every
 * link, every record names a generation record of `lineage` by its hash, and each signed evidence checkpoint.
 * `lineage` needs only the generations the records name. Pure and total: bad data is reported, never thrown.
 */
export function verifyEvidenceChain(
  records: readonly EvidenceRecord[],
  lineage: ReadonlyArray<Pick<LineageRecord, 'generation' | 'hash'>>,
  opts: { groupId?: string; checkpoints?: readonly EvidenceCheckpoint[]; keys?: CheckpointKeyring } = {},
): EvidenceChainReport {
  const groupId = opts.groupId ?? records[0]?.groupId ?? '';
  return verifySeqChain(EVIDENCE, records, opts.checkpoints ?? [], opts.keys ?? {}, { groupId, lineage });
}

/**
 * Signs an evidence chain head. The statement names `chain: "evidence"`, so it can never be mistaken for (or
 * replayed as) a generation or drill checkpoint.
 * @throws {AppError} VALIDATION_FAILED, CONFIG_INVALID as signCheckpoint
 */
export function signEvidenceCheckpoint(
  statement: { groupId: GroupId; seq: number; headHash: string; signedAtMs: number },
  signer: CheckpointSigner,
): EvidenceCheckpoint {
  return signSeqCheckpoint('evidence', statement, signer);
}
