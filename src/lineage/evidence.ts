/**
 * Late Activity Tracker evidence: a hash chain of its own per group (`seq` 1, 2, …), each record naming the
 * generation it belongs to and that generation record's hash. Generation records are never rewritten by evidence.
 * Pure: no I/O, clock or randomness.
 */
import { AppError, asGroupId, type EvidenceRecord, type LineageRecord } from '../core/index.js';
import { GENESIS_PREV_HASH, hashRecord } from './record.js';
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

/** What {@link verifyEvidenceChain} found. */
export interface EvidenceChainReport {
  ok: boolean;
  records: number;
  problems: string[];
}

/**
 * Verifies a group's evidence chain (in `seq` order): every hash, every link, and every record names a generation
 * record of `lineage` by its hash.
 */
export function verifyEvidenceChain(
  records: readonly EvidenceRecord[],
  lineage: readonly LineageRecord[],
): EvidenceChainReport {
  const problems: string[] = [];
  const byGeneration = new Map(lineage.map((r) => [r.generation, r.hash]));
  let prev: EvidenceRecord | undefined;
  for (const r of records) {
    const at = `evidence ${r.seq}`;
    if (r.seq !== (prev?.seq ?? 0) + 1) problems.push(`${at}: expected seq ${(prev?.seq ?? 0) + 1}`);
    if (r.prevHash !== (prev?.hash ?? GENESIS_PREV_HASH)) problems.push(`${at}: does not link to the previous record`);
    if (hashRecord(r as unknown as Record<string, unknown>) !== r.hash) problems.push(`${at}: does not match its hash`);
    if (byGeneration.get(r.generation) !== r.generationHash) {
      problems.push(`${at}: names generation ${r.generation}, whose record has another hash (or none)`);
    }
    prev = r;
  }
  return { ok: problems.length === 0, records: records.length, problems };
}
