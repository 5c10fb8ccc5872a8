import type {
  Checkpoint,
  DrillCheckpoint,
  DrillRecord,
  EvidenceCheckpoint,
  EvidenceRecord,
  LineageRecord,
} from '../core/index.js';
import { verifyCheckpoint } from './checkpoint.js';
import { type DrillChainReport, verifyDrillChain } from './drill.js';
import { type EvidenceChainReport, verifyEvidenceChain } from './evidence.js';
import type { CheckpointKeyring } from './keys.js';
import { GENESIS_PREV_HASH, hashRecord } from './record.js';

/** The kinds of chain breaks {@link verifyChain} reports. */
export const ChainBreakKind = {
  HASH_MISMATCH: 'hash-mismatch',
  PREV_HASH_MISMATCH: 'prev-hash-mismatch',
  GAP: 'gap',
  OUT_OF_ORDER: 'out-of-order',
  DUPLICATE: 'duplicate',
  WRONG_GROUP: 'wrong-group',
} as const;
export type ChainBreakKind = (typeof ChainBreakKind)[keyof typeof ChainBreakKind];

/** One place where the chain is not intact. `message` tells an auditor what to look at. */
export interface ChainBreak {
  generation: number;
  kind: ChainBreakKind;
  message: string;
}

/** What a checkpoint says about the chain. */
export const CheckpointStatus = {
  VALID: 'valid',
  BAD_SIGNATURE: 'bad-signature',
  UNKNOWN_KEY: 'unknown-key',
  HEAD_MISMATCH: 'head-mismatch',
  BEYOND_CHAIN: 'beyond-chain',
  WRONG_GROUP: 'wrong-group',
} as const;
export type CheckpointStatus = (typeof CheckpointStatus)[keyof typeof CheckpointStatus];

/** The result of checking one checkpoint against its signature and the chain. */
export interface CheckpointCheck {
  generation: number;
  keyId: string;
  signedAtMs: number;
  status: CheckpointStatus;
  message: string;
}

/** The outcome of {@link verifyChain}. */
export interface ChainReport {
  /** True when there are no breaks and every checkpoint is `valid`. */
  ok: boolean;
  groupId?: string;
  /** Number of records examined (after excluding records of another group). */
  length: number;
  firstGeneration?: number;
  headGeneration?: number;
  /** Stored hash of the highest generation. */
  headHash?: string;
  /** Breaks, ordered by generation. */
  breaks: ChainBreak[];
  checkpoints: CheckpointCheck[];
  /** The break with the lowest generation, if any: where an auditor should start. */
  firstBreak?: ChainBreak;
  /** Highest generation covered by a `valid` checkpoint, if any. Records after it are not yet signed. */
  signedThroughGeneration?: number;
  /** The group's DR drill chain, when `options.drills` was given (its breaks also make `ok` false). */
  drills?: DrillChainReport;
  /** The group's late evidence chain, when `options.evidence` was given (its breaks also make `ok` false). */
  evidence?: EvidenceChainReport;
}

/** Options for {@link verifyChain}. */
export interface VerifyChainOptions {
  /** The group the chain must belong to (default: the group of the first record, else of the first checkpoint). */
  groupId?: string;
  /**
   * Incremental check: `records` continue a chain already verified through this record, so the first of them must
   * be generation `after.generation + 1` and link to `after.hash` (instead of starting at the genesis hash).
   */
  after?: { generation: number; hash: string };
  /** Incremental check: hashes of already verified records that a checkpoint in `checkpoints` may sign. */
  earlier?: ReadonlyArray<{ generation: number; hash: string }>;
  /** Also verify the group's drill chain (anchored to these records) and its checkpoints. */
  drills?: { records: readonly DrillRecord[]; checkpoints: readonly DrillCheckpoint[] };
  /** Also verify the group's late evidence chain (each record names one of these records) and its checkpoints. */
  evidence?: { records: readonly EvidenceRecord[]; checkpoints: readonly EvidenceCheckpoint[] };
}

const short = (h: string): string => (typeof h === 'string' ? h.slice(0, 12) : String(h));

function safeHash(r: LineageRecord): string | Error {
  try {
    return hashRecord(r);
  } catch (err) {
    return err as Error;
  }
}

function range(from: number, to: number): string {
  return from === to ? `generation ${from} is` : `generations ${from}..${to} are`;
}

/**
 * Verifies a group's hash chain and its signed checkpoints, and says precisely where it is broken.
 *
 * `records` are in stored order (as exported or as the store returns them, expected ascending by generation).
 * Detected and located:
 * - an edited record (`hash-mismatch` at that generation);
 * - a record edited and re-hashed (`prev-hash-mismatch` at the next generation; a checkpoint over it or any later
 *   head signed before the edit becomes `head-mismatch` if the chain was re-hashed up to that head);
 * - a deleted record (`gap` at the next present generation; a first record whose `prevHash` is not genesis means
 *   the records before it were deleted);
 * - deleted records at the end (a checkpoint for a generation the chain no longer has: `beyond-chain`);
 * - records in the wrong order (`out-of-order`), the same generation twice (`duplicate`), a record of another
 *   group (`wrong-group`);
 * - a checkpoint re-signed with an untrusted key (`unknown-key`) or with a tampered field or signature
 *   (`bad-signature`).
 *
 * A chain may start at any generation n ≥ 1 with the genesis `prevHash` (groups adopted with existing keys).
 * Pure and total: never throws for bad data, reports it.
 *
 * @param records - the group's lineage records.
 * @param checkpoints - the group's signed checkpoints (any order).
 * @param publicKeys - trusted checkpoint keys by id.
 * @throws {AppError} CONFIG_INVALID only when a trusted key in `publicKeys` is not an Ed25519 key.
 */
export function verifyChain(
  records: readonly LineageRecord[],
  checkpoints: readonly Checkpoint[],
  publicKeys: CheckpointKeyring,
  options: VerifyChainOptions = {},
): ChainReport {
  const groupId = options.groupId ?? records[0]?.groupId ?? checkpoints[0]?.groupId;
  const breaks: ChainBreak[] = [];

  // 1. Membership and stored order.
  const mine: LineageRecord[] = [];
  let maxSeen = Number.NEGATIVE_INFINITY;
  const seen = new Map<number, LineageRecord>();
  for (const r of records) {
    if (r.groupId !== groupId) {
      breaks.push({
        generation: r.generation,
        kind: 'wrong-group',
        message: `A record of group ${r.groupId} (generation ${r.generation}) is stored in the chain of ${groupId}: check who wrote it and remove it from this chain`,
      });
      continue;
    }
    mine.push(r);
    const twin = seen.get(r.generation);
    if (twin !== undefined) {
      breaks.push({
        generation: r.generation,
        kind: 'duplicate',
        message:
          twin.hash === r.hash
            ? `Generation ${r.generation} is stored twice (identical copies): remove the extra copy`
            : `Two different records claim generation ${r.generation} (hashes ${short(twin.hash)}… and ${short(r.hash)}…): the history was forked or one copy was forged; compare them with the Key Protect versions and Activity Tracker events`,
      });
    } else {
      seen.set(r.generation, r);
      if (r.generation < maxSeen) {
        breaks.push({
          generation: r.generation,
          kind: 'out-of-order',
          message: `Generation ${r.generation} is stored after generation ${maxSeen}: the records were reordered; check the store's write history`,
        });
      }
    }
    maxSeen = Math.max(maxSeen, r.generation);
  }

  // 2. Content and links, in generation order (first copy of each generation).
  const chain = [...seen.values()].sort((a, b) => a.generation - b.generation);
  const after = options.after;
  let prev: Pick<LineageRecord, 'generation' | 'hash'> | undefined = after;
  for (const r of chain) {
    if (after !== undefined && r.generation <= after.generation) {
      breaks.push({
        generation: r.generation,
        kind: 'duplicate',
        message: `Generation ${r.generation} was already verified (the chain was checked through generation ${after.generation}): it is stored twice`,
      });
      continue;
    }
    const computed = safeHash(r);
    if (computed instanceof Error) {
      breaks.push({
        generation: r.generation,
        kind: 'hash-mismatch',
        message: `Generation ${r.generation} is not valid record data (${computed.message}): it was altered in storage`,
      });
    } else if (computed !== r.hash) {
      breaks.push({
        generation: r.generation,
        kind: 'hash-mismatch',
        message: `Generation ${r.generation} was edited after it was recorded: its content hashes to ${short(computed)}… but its stored hash is ${short(r.hash)}…; compare its fields with the Key Protect versions and Activity Tracker events`,
      });
    }
    if (prev === undefined) {
      if (r.prevHash !== GENESIS_PREV_HASH) {
        breaks.push({
          generation: r.generation,
          kind: 'gap',
          message: `The chain starts at generation ${r.generation} but its prevHash (${short(r.prevHash)}…) points at an earlier record: the records before generation ${r.generation} were deleted`,
        });
      }
    } else if (r.generation > prev.generation + 1) {
      breaks.push({
        generation: r.generation,
        kind: 'gap',
        message: `${range(prev.generation + 1, r.generation - 1)} missing between generation ${prev.generation} and ${r.generation}: records were deleted`,
      });
    } else if (r.prevHash !== prev.hash) {
      breaks.push({
        generation: r.generation,
        kind: 'prev-hash-mismatch',
        message: `Generation ${r.generation} links to ${short(r.prevHash)}… but generation ${prev.generation} now has hash ${short(prev.hash)}…: generation ${prev.generation} was rewritten (and re-hashed) or replaced after generation ${r.generation} was recorded`,
      });
    }
    prev = r;
  }
  breaks.sort((a, b) => a.generation - b.generation);

  // 3. Checkpoints, oldest statement first, so a head mismatch can name the last checkpoint that still matched.
  const first = chain[0];
  const head: Pick<LineageRecord, 'generation' | 'hash'> | undefined = chain.at(-1) ?? after;
  const earlier = new Map((options.earlier ?? []).map((e) => [e.generation, e.hash]));
  if (after !== undefined) earlier.set(after.generation, after.hash);
  const cps = [...checkpoints].sort((a, b) => a.generation - b.generation || a.signedAtMs - b.signedAtMs);
  const checks: CheckpointCheck[] = [];
  let lastGood: number | undefined;
  for (const cp of cps) {
    const base = { generation: cp.generation, keyId: cp.keyId, signedAtMs: cp.signedAtMs };
    const sig = verifyCheckpoint(cp, publicKeys);
    let status: CheckpointStatus;
    let message: string;
    const recHash = seen.get(cp.generation)?.hash ?? earlier.get(cp.generation);
    if (sig === 'unknown-key') {
      status = sig;
      message = `Checkpoint for generation ${cp.generation} is signed with key ${cp.keyId}, which is not a trusted checkpoint key: it may have been re-signed after a rewrite; check the key configuration`;
    } else if (sig === 'bad-signature') {
      status = sig;
      message = `Checkpoint for generation ${cp.generation} has a signature that does not match its fields: the checkpoint was tampered with`;
    } else if (cp.groupId !== groupId) {
      status = 'wrong-group';
      message = `Checkpoint for group ${cp.groupId} is stored with the chain of ${groupId}`;
    } else if (head === undefined || cp.generation > head.generation) {
      status = 'beyond-chain';
      message = `Checkpoint signed generation ${cp.generation} (head ${short(cp.headHash)}…) but the chain ends at ${head === undefined ? 'no generation (it is empty)' : `generation ${head.generation}`}: records after that were deleted`;
    } else if (recHash === undefined) {
      status = 'head-mismatch';
      message = `Checkpoint signed generation ${cp.generation} but the chain has no record for it: it was deleted`;
    } else if (recHash !== cp.headHash) {
      status = 'head-mismatch';
      const since = lastGood === undefined ? 'the start of the chain' : `generation ${lastGood + 1}`;
      message = `Checkpoint signed generation ${cp.generation} with head ${short(cp.headHash)}… but the chain now has ${short(recHash)}…: a record from ${since} to generation ${cp.generation} was rewritten and the chain re-hashed`;
    } else {
      status = 'valid';
      message = `Generation ${cp.generation} matches the head signed at ${new Date(cp.signedAtMs).toISOString()}`;
      lastGood = cp.generation;
    }
    checks.push({ ...base, status, message });
  }

  const report: ChainReport = {
    ok: breaks.length === 0 && checks.every((c) => c.status === 'valid'),
    length: mine.length,
    breaks,
    checkpoints: checks,
  };
  if (groupId !== undefined) report.groupId = groupId;
  if (first !== undefined && head !== undefined) {
    report.firstGeneration = first.generation;
    report.headGeneration = head.generation;
    report.headHash = head.hash;
  }
  if (breaks[0] !== undefined) report.firstBreak = breaks[0];
  if (lastGood !== undefined) report.signedThroughGeneration = lastGood;
  if (options.drills) {
    report.drills = verifyDrillChain(options.drills.records, options.drills.checkpoints, publicKeys, {
      groupId: groupId ?? '',
      lineage: chain,
    });
    report.ok = report.ok && report.drills.ok;
  }
  if (options.evidence) {
    report.evidence = verifyEvidenceChain(options.evidence.records, chain, {
      groupId: groupId ?? '',
      checkpoints: options.evidence.checkpoints,
      keys: publicKeys,
    });
    report.ok = report.ok && report.evidence.ok;
  }
  return report;
}
