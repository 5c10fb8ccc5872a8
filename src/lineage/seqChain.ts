/**
 * Chains of their own per group, numbered `seq` 1, 2, … (DR drill records, late evidence records), with signed
 * checkpoints of their head. A checkpoint names its chain (`chain: "drills"` or `"evidence"`) inside the signed
 * bytes, so it can never be mistaken for (or replayed as) a generation checkpoint or one of another chain.
 * Pure: no I/O, clock or randomness.
 */
import { sign, verify } from 'node:crypto';
import { AppError, asGroupId, type GroupId, type LineageRecord, type SeqCheckpoint } from '../core/index.js';
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

export type SeqChainName = SeqCheckpoint['chain'];

interface SeqRecord {
  groupId: string;
  seq: number;
  prevHash: string;
  hash: string;
}

const HASH_RE = /^[0-9a-f]{64}$/;
const isMs = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function signedBytes(cp: Omit<SeqCheckpoint, 'signature'>): Buffer {
  const { algorithm, chain, groupId, headHash, keyId, seq, signedAtMs } = cp;
  return Buffer.from(canonicalJson({ algorithm, chain, groupId, headHash, keyId, seq, signedAtMs }), 'utf8');
}

/**
 * Signs the head of a seq chain with the checkpoint key.
 * @throws {AppError} VALIDATION_FAILED, CONFIG_INVALID as signCheckpoint
 */
export function signSeqCheckpoint<C extends SeqChainName>(
  chain: C,
  statement: { groupId: GroupId; seq: number; headHash: string; signedAtMs: number },
  signer: CheckpointSigner,
): SeqCheckpoint<C> {
  asGroupId(statement.groupId);
  if (!Number.isSafeInteger(statement.seq) || statement.seq < 1) {
    throw new AppError('VALIDATION_FAILED', `${chain} checkpoint seq must be an integer >= 1`);
  }
  if (!HASH_RE.test(statement.headHash)) throw new AppError('VALIDATION_FAILED', 'headHash must be 64 hex digits');
  if (!isMs(statement.signedAtMs)) throw new AppError('VALIDATION_FAILED', 'signedAtMs must be epoch milliseconds');
  const key = loadCheckpointPrivateKey(signer.privateKey);
  const keyId = checkpointKeyId(key);
  if (signer.keyId !== undefined && signer.keyId !== keyId) {
    throw new AppError('VALIDATION_FAILED', `Checkpoint keyId ${signer.keyId} does not belong to this key (${keyId})`);
  }
  const unsigned: Omit<SeqCheckpoint<C>, 'signature'> = {
    chain,
    groupId: statement.groupId,
    seq: statement.seq,
    headHash: statement.headHash,
    signedAtMs: statement.signedAtMs,
    keyId,
    algorithm: 'Ed25519',
  };
  return { ...unsigned, signature: sign(null, signedBytes(unsigned), key).toString('base64') };
}

function checkSignature(
  cp: SeqCheckpoint,
  chain: SeqChainName,
  keys: CheckpointKeyring,
): 'valid' | 'bad-signature' | 'unknown-key' {
  if (!Object.hasOwn(keys, cp.keyId)) return 'unknown-key';
  const key = loadCheckpointPublicKey(keys[cp.keyId] as KeyInput);
  if (cp.algorithm !== 'Ed25519' || cp.chain !== chain || typeof cp.signature !== 'string') return 'bad-signature';
  try {
    return verify(null, signedBytes(cp), key, Buffer.from(cp.signature, 'base64')) ? 'valid' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}

/** One place where a seq chain is not intact. */
export interface SeqChainBreak {
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

export interface SeqCheckpointCheck {
  seq: number;
  keyId: string;
  signedAtMs: number;
  status: 'valid' | 'bad-signature' | 'unknown-key' | 'head-mismatch' | 'beyond-chain' | 'wrong-group';
  message: string;
}

/** The outcome of {@link verifySeqChain}. */
export interface SeqChainReport {
  ok: boolean;
  length: number;
  headSeq?: number;
  headHash?: string;
  breaks: SeqChainBreak[];
  checkpoints: SeqCheckpointCheck[];
  /** Highest record covered by a valid checkpoint. */
  signedThroughSeq?: number;
  /** Records after the last valid checkpoint (not yet signed). */
  unsigned: number;
}

/** How a seq chain names its records in messages, and where a record points into the generation chain. */
export interface SeqChainKind<R> {
  chain: SeqChainName;
  /** `Drill`, `Evidence record`: starts a message. */
  noun: string;
  /** `drills`, `evidence records`. */
  plural: string;
  /** The generation record this record names, and the message when the generation chain does not hold it. */
  anchor: (r: R) => { generation: number; hash: string; message: string } | null;
}

/**
 * Verifies a seq chain like `verifyChain` verifies generations: every record matches its hash and links to the
 * previous one (no gap, duplicate, reordering or foreign record), every record's anchor names a record of the
 * generation chain with that hash (when `lineage` is given), and each checkpoint's signature and head.
 * Pure and total: bad data is reported, never thrown.
 */
export function verifySeqChain<R extends SeqRecord>(
  kind: SeqChainKind<R>,
  records: readonly R[],
  checkpoints: readonly SeqCheckpoint[],
  keys: CheckpointKeyring,
  opts: { groupId: string; lineage?: ReadonlyArray<Pick<LineageRecord, 'generation' | 'hash'>> },
): SeqChainReport {
  const { noun, plural } = kind;
  const breaks: SeqChainBreak[] = [];
  const seen = new Map<number, R>();
  let maxSeen = 0;
  for (const d of records) {
    if (d.groupId !== opts.groupId) {
      breaks.push({
        seq: d.seq,
        kind: 'wrong-group',
        message: `${noun} ${d.seq} of ${d.groupId} is stored with ${opts.groupId}`,
      });
      continue;
    }
    if (seen.has(d.seq)) {
      breaks.push({ seq: d.seq, kind: 'duplicate', message: `${noun} ${d.seq} is stored twice` });
      continue;
    }
    if (d.seq < maxSeen)
      breaks.push({ seq: d.seq, kind: 'out-of-order', message: `${noun} ${d.seq} is stored after ${maxSeen}` });
    seen.set(d.seq, d);
    maxSeen = Math.max(maxSeen, d.seq);
  }
  const generations = new Map((opts.lineage ?? []).map((r) => [r.generation, r.hash]));
  const chain = [...seen.values()].sort((a, b) => a.seq - b.seq);
  let prev: R | undefined;
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
        message: `${noun} ${d.seq} was edited after it was recorded (its content no longer matches its hash)`,
      });
    }
    if (prev === undefined) {
      if (d.seq !== 1 || d.prevHash !== GENESIS_PREV_HASH) {
        breaks.push({
          seq: d.seq,
          kind: 'gap',
          message: `The ${kind.chain} chain starts at ${d.seq}: earlier ${plural} were deleted`,
        });
      }
    } else if (d.seq > prev.seq + 1) {
      breaks.push({
        seq: d.seq,
        kind: 'gap',
        message: `${noun}s ${prev.seq + 1}..${d.seq - 1} are missing: records were deleted`,
      });
    } else if (d.prevHash !== prev.hash) {
      breaks.push({
        seq: d.seq,
        kind: 'prev-hash-mismatch',
        message: `${noun} ${d.seq} does not link to ${prev.seq}: ${prev.seq} was rewritten or replaced`,
      });
    }
    const anchor = opts.lineage ? kind.anchor(d) : null;
    if (anchor && generations.get(anchor.generation) !== anchor.hash) {
      breaks.push({ seq: d.seq, kind: 'anchor-mismatch', message: anchor.message });
    }
    prev = d;
  }
  breaks.sort((a, b) => a.seq - b.seq);
  const head = chain.at(-1);
  const cpNoun = `${noun.split(' ')[0]} checkpoint`;
  let lastGood: number | undefined;
  const checks: SeqCheckpointCheck[] = [...checkpoints]
    .sort((a, b) => a.seq - b.seq || a.signedAtMs - b.signedAtMs)
    .map((cp) => {
      const base = { seq: cp.seq, keyId: cp.keyId, signedAtMs: cp.signedAtMs };
      const sig = checkSignature(cp, kind.chain, keys);
      if (sig !== 'valid') {
        return {
          ...base,
          status: sig,
          message: `${cpNoun} ${cp.seq}: ${sig === 'unknown-key' ? `key ${cp.keyId} is not trusted` : 'signature does not match its fields'}`,
        };
      }
      if (cp.groupId !== opts.groupId) return { ...base, status: 'wrong-group', message: `${cpNoun} of ${cp.groupId}` };
      if (!head || cp.seq > head.seq) {
        return {
          ...base,
          status: 'beyond-chain',
          message: `${cpNoun} signed ${cp.seq} but the chain ends at ${head?.seq ?? 'nothing'}: ${plural} were deleted`,
        };
      }
      const rec = seen.get(cp.seq);
      if (!rec || rec.hash !== cp.headHash) {
        return {
          ...base,
          status: 'head-mismatch',
          message: `${cpNoun} signed ${cp.seq} with another head: one up to ${cp.seq} was rewritten or deleted`,
        };
      }
      lastGood = cp.seq;
      return {
        ...base,
        status: 'valid',
        message: `${noun} ${cp.seq} matches the head signed at ${new Date(cp.signedAtMs).toISOString()}`,
      };
    });
  const report: SeqChainReport = {
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
