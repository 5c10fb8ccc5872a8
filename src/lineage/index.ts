/**
 * Audit lineage: one hash-chained record per generation, signed checkpoints of chain heads, chain verification and
 * the pure part of live attestation. Pure: no I/O, no clock, no randomness (time and keys come in as arguments).
 *
 * Checkpoint keys: derive a pair with `checkpointKeyPairFromSeed(random.bytes(32))` (the Random port supplies the
 * seed) or `generateKeyPairSync('ed25519')` in a composition root; keep the private key secret and publish the
 * public key to auditors.
 */
export {
  type AttestationOptions,
  type AttestationReport,
  type AttestationResult,
  type AttestationUnwrap,
  judgeAttestation,
  type MemberAttestation,
  planAttestation,
} from './attestation.js';
export { canonicalJson } from './canonicalJson.js';
export {
  type CheckpointSignatureStatus,
  type CheckpointSigner,
  type CheckpointStatement,
  signCheckpoint,
  verifyCheckpoint,
} from './checkpoint.js';
export {
  buildDrillRecord,
  type DrillChainBreak,
  type DrillChainReport,
  type DrillCheckpointCheck,
  type DrillRecordInput,
  signDrillCheckpoint,
  verifyDrillChain,
} from './drill.js';
export {
  buildEvidenceRecord,
  type EvidenceChainReport,
  type EvidenceRecordInput,
  signEvidenceCheckpoint,
  verifyEvidenceChain,
} from './evidence.js';
export {
  type CheckpointKeyPair,
  type CheckpointKeyring,
  checkpointKeyId,
  checkpointKeyPairFromSeed,
  checkpointKeyring,
  type KeyInput,
  loadCheckpointPrivateKey,
  loadCheckpointPublicKey,
} from './keys.js';
export { buildLineageRecord, GENESIS_PREV_HASH, hashRecord, type LineageRecordInput, sha256Hex } from './record.js';
export type { SeqChainBreak, SeqChainReport, SeqCheckpointCheck } from './seqChain.js';
export { findMemberByKeyVersion, type GenerationSummary, memberVersionMap, summarizeGeneration } from './summary.js';
export {
  checkLineageText,
  FORMULA_LEADING,
  LINEAGE_TEXT_LIMITS,
  type LineageTextKind,
  lineageTextProblem,
} from './text.js';
export {
  type ChainBreak,
  ChainBreakKind,
  type ChainReport,
  type CheckpointCheck,
  CheckpointStatus,
  type VerifyChainOptions,
  verifyChain,
} from './verifyChain.js';
