import type { Stores } from '../app/index.js';
import {
  type Checkpoint,
  type Clock,
  type DrillCheckpoint,
  type EvidenceCheckpoint,
  type EvidenceRecord,
  type GroupId,
  hasCode,
  type LineageRecord,
} from '../core/index.js';
import {
  type ChainReport,
  type CheckpointKeyring,
  checkpointKeyring,
  GENESIS_PREV_HASH,
  hashRecord,
  loadCheckpointPublicKey,
  verifyChain,
  verifyDrillChain,
  verifyEvidenceChain,
} from '../lineage/index.js';
import { drillCheckpointView, evidenceCheckpointView } from './drillRoutes.js';
import { checkpointView } from './views.js';

/** What `GET /v1/groups/{groupId}/proof` returns. */
export interface ProofDocument {
  groupId: GroupId;
  checkedAtMs: number;
  records: number;
  head: { generation: number; hash: string } | null;
  chain: ChainReport;
  checkpoint: Checkpoint | null;
  /** The latest signed head of the group's DR drill chain (absent when the store keeps no drills). */
  drillCheckpoint?: DrillCheckpoint | null;
  /** The latest signed head of the group's late evidence chain (absent when the store keeps no evidence chain). */
  evidenceCheckpoint?: EvidenceCheckpoint | null;
  publicKeys: { keyId: string; algorithm: 'Ed25519'; pem: string }[];
  howToVerify: string[];
  /** How the server checked the chain (see `buildProof`), and the complete counts behind the listed breaks/checks. */
  verification: {
    mode: 'full' | 'incremental';
    lastFullCheckAtMs: number;
    breaks: number;
    checkpoints: number;
    listedAtMost: number;
  };
}

/** The steps an auditor follows to re-verify a proof without trusting lockstep (also in the OpenAPI document). */
export const HOW_TO_VERIFY: readonly string[] = [
  'Download the records: GET /v1/export?format=jsonl&groupId=<groupId> (one record per line, oldest first).',
  'For each record, recompute hash = hex SHA-256 of the RFC 8785 canonical JSON (keys sorted, no whitespace) of the record without its "hash" field; it must equal "hash".',
  `Check each record's "prevHash" equals the previous record's "hash"; the first record's prevHash is ${GENESIS_PREV_HASH} (64 zeros), generations have no gaps.`,
  'Verify checkpoint.signature (base64 Ed25519) over the canonical JSON of the checkpoint without "signature" ({algorithm, generation, groupId, headHash, keyId, signedAtMs}) with the public key whose keyId matches; pin that key out of band (keyId = first 16 hex digits of SHA-256 of its SPKI DER).',
  'Check checkpoint.headHash equals the "hash" of the record of generation checkpoint.generation: nothing up to that generation was removed or rewritten; later records must chain onto it.',
  'The last page ends with lines of "kind": "drill" and "kind": "evidence": two chains of their own (seq 1, 2, …), hashed and linked the same way; each evidence record\'s generationHash must equal the "hash" of the record of its generation. Their latest signed heads (drillCheckpoint, evidenceCheckpoint) sign {algorithm, chain, groupId, headHash, keyId, seq, signedAtMs}.',
];

/** Trusted checkpoint keys, with ids derived from the keys themselves, and their SPKI PEM for auditors. */
export interface TrustedCheckpointKeys {
  keyring: CheckpointKeyring;
  published: ProofDocument['publicKeys'];
}

/**
 * Loads the configured checkpoint public keys (the configuration's names are ignored: ids are derived from the keys).
 * @throws {AppError} CONFIG_INVALID when one is not an Ed25519 public key
 */
export function loadTrustedKeys(pems: Record<string, string>): TrustedCheckpointKeys {
  const keyring = checkpointKeyring(Object.values(pems));
  const published = Object.entries(keyring).map(([keyId, key]) => ({
    keyId,
    algorithm: 'Ed25519' as const,
    pem: String(loadCheckpointPublicKey(key).export({ format: 'pem', type: 'spki' })),
  }));
  return { keyring, published };
}

/** How many of the newest records a proof hands to the group page (older ones: the export and `/generations`). */
export const PAGE_RECORDS = 50;
/** Breaks and checkpoint checks listed in a proof's `chain` (the counts in `verification` are complete). */
export const PROOF_LIST_LIMIT = 20;
/**
 * A cached verification is redone from the first record at least this often, so a rewrite of an already verified
 * record is still found (an incremental check only re-reads what was appended since, and the newest records).
 */
export const FULL_CHECK_EVERY_MS = 10 * 60_000;

/** What one process remembers of a verified chain: enough to continue the check from its head (bounded in size). */
interface ChainState {
  /** The report as listed (see `summarise`): bounded, whatever the chain's length. */
  report: ChainReport;
  breaksTotal: number;
  checkpointsTotal: number;
  head?: { generation: number; hash: string };
  /** Position of the last checkpoint checked, in the store's (generation, signedAtMs) order. */
  lastCheckpoint?: Checkpoint;
  /** The latest checkpoint by (generation, signedAtMs). */
  latest?: Checkpoint;
  fullAtMs: number;
}

/** Per API instance (keyed by its trusted keys), per group: the chain verified so far. In memory only. */
const verified = new WeakMap<TrustedCheckpointKeys, Map<GroupId, ChainState>>();
const MAX_CACHED_GROUPS = 1000;

const byPosition = (a: Checkpoint, b: Checkpoint) => a.generation - b.generation || a.signedAtMs - b.signedAtMs;
const after = (c: Checkpoint, pos: Checkpoint | undefined) => pos === undefined || byPosition(c, pos) > 0;

/** Reads and verifies the whole chain and every checkpoint. */
async function fullCheck(
  deps: { stores: Stores; keys: TrustedCheckpointKeys },
  groupId: GroupId,
  nowMs: number,
): Promise<ChainState> {
  const [records, checkpoints] = await Promise.all([
    deps.stores.lineage.chain(groupId),
    deps.stores.checkpoints.list(groupId),
  ]);
  const report = verifyChain(records, checkpoints, deps.keys.keyring, { groupId });
  const sorted = [...checkpoints].sort(byPosition);
  const state: ChainState = {
    report: summarise(report, sorted.at(-1)),
    breaksTotal: report.breaks.length,
    checkpointsTotal: report.checkpoints.length,
    fullAtMs: nowMs,
  };
  if (report.headGeneration !== undefined && report.headHash !== undefined)
    state.head = { generation: report.headGeneration, hash: report.headHash };
  if (sorted.length) state.lastCheckpoint = state.latest = sorted.at(-1);
  return state;
}

/**
 * Continues an intact verified chain with what was appended since (records after its head, checkpoints after the
 * last one checked). Returns undefined when the continuation needs a full check instead.
 */
async function continueCheck(
  deps: { stores: Stores; keys: TrustedCheckpointKeys },
  groupId: GroupId,
  prev: ChainState & { head: { generation: number; hash: string } },
  newest: readonly LineageRecord[],
): Promise<ChainState | undefined> {
  // the newest records re-read for the page must still hash to what was verified (a rewritten head needs a full check)
  const stillHead = newest.find((r) => r.generation === prev.head.generation);
  if (stillHead === undefined || stillHead.hash !== prev.head.hash || hashRecord(stillHead) !== prev.head.hash)
    return undefined;
  // `newest` holds the head, so it holds every record appended after it (fewer than PAGE_RECORDS)
  const cps = await deps.stores.checkpoints.list(
    groupId,
    prev.lastCheckpoint && {
      generation: prev.lastCheckpoint.generation,
      signedAtMs: prev.lastCheckpoint.signedAtMs,
    },
  );
  const records = newest.filter((r) => r.generation > prev.head.generation).sort((a, b) => a.generation - b.generation);
  const checkpoints = cps.filter((c) => after(c, prev.lastCheckpoint)).sort(byPosition);
  if (records.length === 0 && checkpoints.length === 0) return prev;
  // a new checkpoint over an already verified generation: its record's hash is needed (rare; else check fully)
  const older = [...new Set(checkpoints.filter((c) => c.generation < prev.head.generation).map((c) => c.generation))];
  if (older.length > PROOF_LIST_LIMIT) return undefined;
  const earlier = await Promise.all(
    older.map(async (g) => {
      const r = await deps.stores.lineage.get(groupId, g);
      return { generation: g, hash: hashRecord(r) === r.hash ? r.hash : `rewritten:${r.hash}` };
    }),
  );
  const inc = verifyChain(records, checkpoints, deps.keys.keyring, { groupId, after: prev.head, earlier });
  const was = prev.report;
  const report: ChainReport = {
    ok: was.ok && inc.ok,
    length: was.length + inc.length,
    breaks: [...was.breaks, ...inc.breaks],
    checkpoints: [...was.checkpoints, ...inc.checkpoints],
  };
  if (was.groupId !== undefined) report.groupId = was.groupId;
  const first = was.firstGeneration ?? inc.firstGeneration;
  if (first !== undefined) report.firstGeneration = first;
  const headGeneration = inc.headGeneration ?? was.headGeneration;
  const headHash = inc.headHash ?? was.headHash;
  if (headGeneration !== undefined) report.headGeneration = headGeneration;
  if (headHash !== undefined) report.headHash = headHash;
  const firstBreak = was.firstBreak ?? inc.firstBreak;
  if (firstBreak !== undefined) report.firstBreak = firstBreak;
  const signed = Math.max(was.signedThroughGeneration ?? -1, inc.signedThroughGeneration ?? -1);
  if (signed >= 0) report.signedThroughGeneration = signed;
  const lastCp = checkpoints.at(-1);
  const state: ChainState = {
    ...prev,
    report: summarise(report, lastCp ?? prev.latest),
    breaksTotal: prev.breaksTotal + inc.breaks.length,
    checkpointsTotal: prev.checkpointsTotal + inc.checkpoints.length,
  };
  if (headGeneration !== undefined && headHash !== undefined)
    state.head = { generation: headGeneration, hash: headHash };
  if (lastCp) state.lastCheckpoint = state.latest = lastCp;
  return state;
}

/** The report as a proof lists it: complete verdict and counts, at most PROOF_LIST_LIMIT breaks and checks. */
function summarise(report: ChainReport, latest: Checkpoint | undefined): ChainReport {
  const bad = report.checkpoints.filter((c) => c.status !== 'valid');
  const latestCheck = latest
    ? report.checkpoints.findLast((c) => c.generation === latest.generation && c.signedAtMs === latest.signedAtMs)
    : undefined;
  const checks = bad.slice(0, PROOF_LIST_LIMIT);
  if (latestCheck && !checks.includes(latestCheck)) checks.push(latestCheck);
  return { ...report, breaks: report.breaks.slice(0, PROOF_LIST_LIMIT), checkpoints: checks };
}

/**
 * Runs the chain check for one group and assembles the proof: the verdict, the latest signed checkpoint and the
 * trusted public keys (SPKI PEM) to verify it offline; `records` are the newest PAGE_RECORDS records, oldest first.
 *
 * The check is incremental: each API instance remembers, per group, the chain it verified (its head and the last
 * checkpoint checked) and only verifies what was appended since, re-hashing the newest records on every call; a
 * chain with any break, a rewritten head, or one last checked fully FULL_CHECK_EVERY_MS ago is checked again from
 * the first record. So a proof costs a few indexed reads at any history length, and stays bounded in size: the
 * report lists at most PROOF_LIST_LIMIT breaks and checkpoint checks (the first breaks, every failed checkpoint up to
 * the limit, and the latest checkpoint); `verification` says how it was checked and the complete counts.
 */
export async function buildProof(
  deps: { stores: Stores; clock: Clock; keys: TrustedCheckpointKeys },
  groupId: GroupId,
): Promise<{ proof: ProofDocument; records: LineageRecord[] }> {
  const nowMs = deps.clock.nowMs();
  const cache = verified.get(deps.keys) ?? new Map<GroupId, ChainState>();
  verified.set(deps.keys, cache);
  const [newest, drills, drillCheckpoints, evidence, evidenceCheckpoints] = await Promise.all([
    deps.stores.lineage.list(groupId, { limit: PAGE_RECORDS }).then((p) => p.items),
    deps.stores.drills?.chain(groupId),
    deps.stores.drills?.checkpoints(groupId),
    deps.stores.evidence?.chain(groupId),
    deps.stores.evidence?.checkpoints(groupId),
  ]);
  const prev = cache.get(groupId);
  let state: ChainState | undefined;
  let mode: 'full' | 'incremental' = 'full';
  if (prev?.head && prev.report.ok && nowMs - prev.fullAtMs < FULL_CHECK_EVERY_MS && nowMs >= prev.fullAtMs) {
    state = await continueCheck(deps, groupId, { ...prev, head: prev.head }, newest);
    if (state) mode = 'incremental';
  }
  state ??= await fullCheck(deps, groupId, nowMs);
  cache.delete(groupId);
  if (cache.size >= MAX_CACHED_GROUPS) cache.delete(cache.keys().next().value as GroupId);
  cache.set(groupId, state);
  // The drill chain is short (one record per drill) and checked whole on every request; its anchors to the
  // generation chain are checked by `lockstep audit verify`, which reads every record.
  const drillReport =
    drills && drillCheckpoints ? verifyDrillChain(drills, drillCheckpoints, deps.keys.keyring, { groupId }) : undefined;
  let report: ChainReport = drillReport
    ? { ...state.report, drills: drillReport, ok: state.report.ok && drillReport.ok }
    : state.report;
  // The late evidence chain is short too (late events are rare) and checked whole, each record against the
  // generation record it names (read by generation when it is not among the newest).
  if (evidence && evidenceCheckpoints) {
    const lineage = await anchorsOf(deps.stores, groupId, evidence, newest);
    const evidenceReport = verifyEvidenceChain(evidence, lineage, {
      groupId,
      checkpoints: evidenceCheckpoints,
      keys: deps.keys.keyring,
    });
    report = { ...report, evidence: evidenceReport, ok: report.ok && evidenceReport.ok };
  }
  const latestDrillCp = latestSeqCheckpoint(drillCheckpoints);
  const latestEvidenceCp = latestSeqCheckpoint(evidenceCheckpoints);
  const proof: ProofDocument = {
    groupId,
    checkedAtMs: nowMs,
    records: report.length,
    head: state.head ? { ...state.head } : null,
    chain: report,
    checkpoint: state.latest ? checkpointView(state.latest) : null,
    ...(drillCheckpoints ? { drillCheckpoint: latestDrillCp ? drillCheckpointView(latestDrillCp) : null } : {}),
    ...(evidenceCheckpoints
      ? { evidenceCheckpoint: latestEvidenceCp ? evidenceCheckpointView(latestEvidenceCp) : null }
      : {}),
    publicKeys: deps.keys.published.map((k) => ({ ...k })),
    howToVerify: [...HOW_TO_VERIFY],
    verification: {
      mode,
      lastFullCheckAtMs: state.fullAtMs,
      breaks: state.breaksTotal,
      checkpoints: state.checkpointsTotal,
      listedAtMost: PROOF_LIST_LIMIT,
    },
  };
  return { proof, records: [...newest].sort((a, b) => a.generation - b.generation) };
}

/** The newest of a seq chain's checkpoints, by (`seq`, `signedAtMs`). */
function latestSeqCheckpoint<C extends { seq: number; signedAtMs: number }>(cps: readonly C[] | undefined) {
  return cps?.reduce<C | undefined>(
    (x, c) => (x === undefined || c.seq > x.seq || (c.seq === x.seq && c.signedAtMs > x.signedAtMs) ? c : x),
    undefined,
  );
}

/** The generation records the evidence records name: from `newest`, else read by generation (absent when none). */
async function anchorsOf(
  stores: Stores,
  groupId: GroupId,
  evidence: readonly EvidenceRecord[],
  newest: readonly LineageRecord[],
): Promise<LineageRecord[]> {
  const have = new Map(newest.map((r) => [r.generation, r]));
  const wanted = [...new Set(evidence.map((e) => e.generation))].filter(
    (g) => Number.isSafeInteger(g) && g >= 1 && !have.has(g),
  );
  const read = await Promise.all(
    wanted.map((g) =>
      stores.lineage
        .get(groupId, g)
        .catch((err: unknown) => (hasCode(err, 'GENERATION_NOT_FOUND') ? undefined : Promise.reject(err))),
    ),
  );
  return [...have.values(), ...read.filter((r): r is LineageRecord => r !== undefined)];
}
