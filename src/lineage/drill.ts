/**
 * DR drill records: a hash chain of their own per group (`seq` 1, 2, …), each record anchored to the generation
 * chain head it ran against (`lineageHead`), with signed checkpoints of the drill chain head. Generation records and
 * generation checkpoints are not changed by drills. Pure: no I/O, clock or randomness.
 */
import { sign, verify } from 'node:crypto';
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
import {
  type CheckpointKeyring,
  checkpointKeyId,
  type KeyInput,
  loadCheckpointPrivateKey,
  loadCheckpointPublicKey,
} from './keys.js';
import { GENESIS_PREV_HASH, hashRecord } from './record.js';

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

function signedBytes(cp: Omit<DrillCheckpoint, 'signature'>): Buffer {
  const { algorithm, chain, groupId, headHash, keyId, seq, signedAtMs } = cp;
  return Buffer.from(canonicalJson({ algorithm, chain, groupId, headHash, keyId, seq, signedAtMs }), 'utf8');
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
  asGroupId(statement.groupId);
  if (!Number.isSafeInteger(statement.seq) || statement.seq < 1) {
    throw new AppError('VALIDATION_FAILED', 'Drill checkpoint seq must be an integer >= 1');
  }
  if (!HASH_RE.test(statement.headHash)) throw new AppError('VALIDATION_FAILED', 'headHash must be 64 hex digits');
  if (!isMs(statement.signedAtMs)) throw new AppError('VALIDATION_FAILED', 'signedAtMs must be epoch milliseconds');
  const key = loadCheckpointPrivateKey(signer.privateKey);
  const keyId = checkpointKeyId(key);
  if (signer.keyId !== undefined && signer.keyId !== keyId) {
    throw new AppError('VALIDATION_FAILED', `Checkpoint keyId ${signer.keyId} does not belong to this key (${keyId})`);
  }
  const unsigned: Omit<DrillCheckpoint, 'signature'> = {
    chain: 'drills',
    groupId: statement.groupId,
    seq: statement.seq,
    headHash: statement.headHash,
    signedAtMs: statement.signedAtMs,
    keyId,
    algorithm: 'Ed25519',
  };
  return { ...unsigned, signature: sign(null, signedBytes(unsigned), key).toString('base64') };
}

function checkSignature(cp: DrillCheckpoint, keys: CheckpointKeyring): 'valid' | 'bad-signature' | 'unknown-key' {
  if (!Object.hasOwn(keys, cp.keyId)) return 'unknown-key';
  const key = loadCheckpointPublicKey(keys[cp.keyId] as KeyInput);
  if (cp.algorithm !== 'Ed25519' || cp.chain !== 'drills' || typeof cp.signature !== 'string') return 'bad-signature';
  try {
    return verify(null, signedBytes(cp), key, Buffer.from(cp.signature, 'base64')) ? 'valid' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}

/** One place where the drill chain is not intact. */
export interface DrillChainBreak {
  seq: number;
  kind:
    | 'hash-mismatch'
    | 'prev-hash-mismatch'
    | 'gap'
    | 'duplicate'
    | 'out-of-order'
    | 'wrong-group'
    | 'anchor-mismatch';
  message: string;
}

export interface DrillCheckpointCheck {
  seq: number;
  keyId: string;
  signedAtMs: number;
  status: 'valid' | 'bad-signature' | 'unknown-key' | 'head-mismatch' | 'beyond-chain' | 'wrong-group';
  message: string;
}

/** The outcome of {@link verifyDrillChain}. */
export interface DrillChainReport {
  ok: boolean;
  length: number;
  headSeq?: number;
  headHash?: string;
  breaks: DrillChainBreak[];
  checkpoints: DrillCheckpointCheck[];
  /** Highest drill covered by a valid checkpoint. */
  signedThroughSeq?: number;
  /** Drills after the last valid checkpoint (not yet signed). */
  unsigned: number;
}

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
  const breaks: DrillChainBreak[] = [];
  const seen = new Map<number, DrillRecord>();
  let maxSeen = 0;
  for (const d of drills) {
    if (d.groupId !== opts.groupId) {
      breaks.push({
        seq: d.seq,
        kind: 'wrong-group',
        message: `Drill ${d.seq} of ${d.groupId} is stored with ${opts.groupId}`,
      });
      continue;
    }
    if (seen.has(d.seq)) {
      breaks.push({ seq: d.seq, kind: 'duplicate', message: `Drill ${d.seq} is stored twice` });
      continue;
    }
    if (d.seq < maxSeen)
      breaks.push({ seq: d.seq, kind: 'out-of-order', message: `Drill ${d.seq} is stored after drill ${maxSeen}` });
    seen.set(d.seq, d);
    maxSeen = Math.max(maxSeen, d.seq);
  }
  const generations = new Map((opts.lineage ?? []).map((r) => [r.generation, r.hash]));
  const chain = [...seen.values()].sort((a, b) => a.seq - b.seq);
  let prev: DrillRecord | undefined;
  for (const d of chain) {
    let computed: string | undefined;
    try {
      computed = hashRecord(d as unknown as Record<string, unknown>);
    } catch {
      computed = undefined;
    }
    if (computed !== d.hash) {
      breaks.push({
        seq: d.seq,
        kind: 'hash-mismatch',
        message: `Drill ${d.seq} was edited after it was recorded (its content no longer matches its hash)`,
      });
    }
    if (prev === undefined) {
      if (d.seq !== 1 || d.prevHash !== GENESIS_PREV_HASH) {
        breaks.push({
          seq: d.seq,
          kind: 'gap',
          message: `The drill chain starts at drill ${d.seq}: earlier drills were deleted`,
        });
      }
    } else if (d.seq > prev.seq + 1) {
      breaks.push({
        seq: d.seq,
        kind: 'gap',
        message: `Drills ${prev.seq + 1}..${d.seq - 1} are missing: records were deleted`,
      });
    } else if (d.prevHash !== prev.hash) {
      breaks.push({
        seq: d.seq,
        kind: 'prev-hash-mismatch',
        message: `Drill ${d.seq} does not link to drill ${prev.seq}: drill ${prev.seq} was rewritten or replaced`,
      });
    }
    if (opts.lineage && d.lineageHead && generations.get(d.lineageHead.generation) !== d.lineageHead.hash) {
      breaks.push({
        seq: d.seq,
        kind: 'anchor-mismatch',
        message: `Drill ${d.seq} ran against generation ${d.lineageHead.generation} with hash ${d.lineageHead.hash.slice(0, 12)}…, which the generation chain does not hold`,
      });
    }
    prev = d;
  }
  breaks.sort((a, b) => a.seq - b.seq);
  const head = chain.at(-1);
  let lastGood: number | undefined;
  const checks: DrillCheckpointCheck[] = [...checkpoints]
    .sort((a, b) => a.seq - b.seq || a.signedAtMs - b.signedAtMs)
    .map((cp) => {
      const base = { seq: cp.seq, keyId: cp.keyId, signedAtMs: cp.signedAtMs };
      const sig = checkSignature(cp, keys);
      if (sig !== 'valid') {
        return {
          ...base,
          status: sig,
          message: `Drill checkpoint ${cp.seq}: ${sig === 'unknown-key' ? `key ${cp.keyId} is not trusted` : 'signature does not match its fields'}`,
        };
      }
      if (cp.groupId !== opts.groupId)
        return { ...base, status: 'wrong-group', message: `Drill checkpoint of ${cp.groupId}` };
      if (!head || cp.seq > head.seq) {
        return {
          ...base,
          status: 'beyond-chain',
          message: `Drill checkpoint signed drill ${cp.seq} but the chain ends at ${head?.seq ?? 'nothing'}: drills were deleted`,
        };
      }
      const rec = seen.get(cp.seq);
      if (!rec || rec.hash !== cp.headHash) {
        return {
          ...base,
          status: 'head-mismatch',
          message: `Drill checkpoint signed drill ${cp.seq} with another head: a drill up to ${cp.seq} was rewritten or deleted`,
        };
      }
      lastGood = cp.seq;
      return {
        ...base,
        status: 'valid',
        message: `Drill ${cp.seq} matches the head signed at ${new Date(cp.signedAtMs).toISOString()}`,
      };
    });
  const report: DrillChainReport = {
    ok: breaks.length === 0 && checks.every((c) => c.status === 'valid'),
    length: chain.length,
    breaks,
    checkpoints: checks,
    unsigned: head ? head.seq - (lastGood ?? 0) : 0,
  };
  if (head) {
    report.headSeq = head.seq;
    report.headHash = head.hash;
  }
  if (lastGood !== undefined) report.signedThroughSeq = lastGood;
  return report;
}
