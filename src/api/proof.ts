import type { Stores } from '../app/index.js';
import type { Checkpoint, Clock, DrillCheckpoint, GroupId, LineageRecord } from '../core/index.js';
import {
  type ChainReport,
  type CheckpointKeyring,
  checkpointKeyring,
  GENESIS_PREV_HASH,
  loadCheckpointPublicKey,
  verifyChain,
} from '../lineage/index.js';
import { drillCheckpointView } from './drillRoutes.js';
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
  publicKeys: { keyId: string; algorithm: 'Ed25519'; pem: string }[];
  howToVerify: string[];
}

/** The steps an auditor follows to re-verify a proof without trusting lockstep (also in the OpenAPI document). */
export const HOW_TO_VERIFY: readonly string[] = [
  'Download the records: GET /v1/export?format=jsonl&groupId=<groupId> (one record per line, oldest first).',
  'For each record, recompute hash = hex SHA-256 of the RFC 8785 canonical JSON (keys sorted, no whitespace) of the record without its "hash" field; it must equal "hash".',
  `Check each record's "prevHash" equals the previous record's "hash"; the first record's prevHash is ${GENESIS_PREV_HASH} (64 zeros), generations have no gaps.`,
  'Verify checkpoint.signature (base64 Ed25519) over the canonical JSON of the checkpoint without "signature" ({algorithm, generation, groupId, headHash, keyId, signedAtMs}) with the public key whose keyId matches; pin that key out of band (keyId = first 16 hex digits of SHA-256 of its SPKI DER).',
  'Check checkpoint.headHash equals the "hash" of the record of generation checkpoint.generation: nothing up to that generation was removed or rewritten; later records must chain onto it.',
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

/**
 * Runs the chain check for one group over the stored chain and checkpoints and assembles the proof: the report,
 * the latest signed checkpoint and the trusted public keys (SPKI PEM) to verify it offline.
 */
export async function buildProof(
  deps: { stores: Stores; clock: Clock; keys: TrustedCheckpointKeys },
  groupId: GroupId,
): Promise<{ proof: ProofDocument; records: LineageRecord[] }> {
  const [records, checkpoints, drills, drillCheckpoints] = await Promise.all([
    deps.stores.lineage.chain(groupId),
    deps.stores.checkpoints.list(groupId),
    deps.stores.drills?.chain(groupId),
    deps.stores.drills?.checkpoints(groupId),
  ]);
  const chain = verifyChain(records, checkpoints, deps.keys.keyring, {
    groupId,
    ...(drills && drillCheckpoints ? { drills: { records: drills, checkpoints: drillCheckpoints } } : {}),
  });
  const latestDrillCp = drillCheckpoints?.reduce<DrillCheckpoint | undefined>(
    (a, c) => (a === undefined || c.seq > a.seq || (c.seq === a.seq && c.signedAtMs > a.signedAtMs) ? c : a),
    undefined,
  );
  const latest = [...checkpoints].sort((a, b) => b.generation - a.generation || b.signedAtMs - a.signedAtMs)[0];
  const head = records.reduce<LineageRecord | undefined>(
    (h, r) => (h === undefined || r.generation > h.generation ? r : h),
    undefined,
  );
  const proof: ProofDocument = {
    groupId,
    checkedAtMs: deps.clock.nowMs(),
    records: records.length,
    head: head ? { generation: head.generation, hash: head.hash } : null,
    chain,
    checkpoint: latest ? checkpointView(latest) : null,
    ...(drillCheckpoints ? { drillCheckpoint: latestDrillCp ? drillCheckpointView(latestDrillCp) : null } : {}),
    publicKeys: deps.keys.published.map((k) => ({ ...k })),
    howToVerify: [...HOW_TO_VERIFY],
  };
  return { proof, records };
}
