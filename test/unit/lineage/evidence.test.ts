import { describe, expect, it } from 'vitest';
import type { EvidenceRecord, GroupId, KeyCrn, RunId } from '../../../src/core/index.js';
import {
  buildEvidenceRecord,
  checkpointKeyPairFromSeed,
  checkpointKeyring,
  type EvidenceRecordInput,
  hashRecord,
  signDrillCheckpoint,
  signEvidenceCheckpoint,
  verifyChain,
  verifyDrillChain,
  verifyEvidenceChain,
} from '../../../src/lineage/index.js';
import { buildChain, CRNS, GROUP } from './fixtures.js';

const pair = checkpointKeyPairFromSeed(Buffer.alloc(32, 5));
const other = checkpointKeyPairFromSeed(Buffer.alloc(32, 6));
const keys = checkpointKeyring([pair.publicKey]);
const lineage = buildChain(1, 2);
const G = GROUP;

function input(seq: number, over: Partial<EvidenceRecordInput> = {}): EvidenceRecordInput {
  return {
    kind: 'evidence',
    groupId: G,
    seq,
    generation: 2,
    generationHash: lineage[1]!.hash,
    runId: lineage[1]!.runId as RunId,
    crn: CRNS[1] as KeyCrn,
    evidence: {
      eventId: `late-${seq}`,
      action: 'kms.secrets.rotate',
      eventTimeMs: 5_000 + seq,
      initiator: 'iam-ServiceId-lockstep',
      outcome: 'success',
    },
    recordedAtMs: 6_000 + seq,
    ...over,
  };
}

function chainOf(n: number): EvidenceRecord[] {
  const out: EvidenceRecord[] = [];
  for (let seq = 1; seq <= n; seq++) out.push(buildEvidenceRecord(input(seq), out.at(-1)));
  return out;
}

const sign = (r: EvidenceRecord, signedAtMs = 9_000, key = pair.privateKey) =>
  signEvidenceCheckpoint({ groupId: r.groupId, seq: r.seq, headHash: r.hash, signedAtMs }, { privateKey: key });
const rehash = (r: EvidenceRecord): EvidenceRecord => ({ ...r, hash: hashRecord(r as never) });

describe('verifyEvidenceChain', () => {
  it('accepts an intact, anchored and signed chain', () => {
    const chain = chainOf(3);
    const report = verifyEvidenceChain(chain, lineage, { groupId: G, checkpoints: [sign(chain[2]!)], keys });
    expect(report).toMatchObject({ ok: true, length: 3, headSeq: 3, signedThroughSeq: 3, unsigned: 0, breaks: [] });
  });

  it('locates an edited record, a deleted one, a duplicate and a foreign one', () => {
    const chain = chainOf(4);
    const edited = chain.map((r) => (r.seq === 2 ? { ...r, evidence: { ...r.evidence, initiator: 'mallory' } } : r));
    expect(verifyEvidenceChain(edited, lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 2, kind: 'hash-mismatch' }),
    ]);
    expect(verifyEvidenceChain([chain[0]!, chain[2]!, chain[3]!], lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 3, kind: 'gap' }),
    ]);
    expect(verifyEvidenceChain(chain.slice(1), lineage, { groupId: G }).breaks[0]).toMatchObject({ kind: 'gap' });
    expect(verifyEvidenceChain([...chain, chain[1]!], lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 2, kind: 'duplicate' }),
    ]);
    const foreign = { ...chain[3]!, groupId: 'orders' as GroupId };
    expect(verifyEvidenceChain([...chain.slice(0, 3), foreign], lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 4, kind: 'wrong-group' }),
    ]);
  });

  it('a re-hashed edit breaks the next link, and a re-linked chain no longer matches its signed head', () => {
    const chain = chainOf(2);
    const cp = sign(chain[1]!);
    const forged = rehash({ ...chain[0]!, evidence: { ...chain[0]!.evidence, outcome: 'failure' } });
    expect(verifyEvidenceChain([forged, chain[1]!], lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 2, kind: 'prev-hash-mismatch' }),
    ]);
    const relinked = rehash({ ...chain[1]!, prevHash: forged.hash });
    const report = verifyEvidenceChain([forged, relinked], lineage, { groupId: G, checkpoints: [cp], keys });
    expect(report.breaks).toEqual([]);
    expect(report.ok).toBe(false);
    expect(report.checkpoints[0]).toMatchObject({ seq: 2, status: 'head-mismatch' });
    // the latest record deleted: its checkpoint is beyond the chain
    expect(
      verifyEvidenceChain([chain[0]!], lineage, { groupId: G, checkpoints: [cp], keys }).checkpoints[0],
    ).toMatchObject({ status: 'beyond-chain' });
  });

  it('every record must name a generation record with that hash', () => {
    const wrong = buildEvidenceRecord(input(1, { generationHash: 'f'.repeat(64) }));
    expect(verifyEvidenceChain([wrong], lineage, { groupId: G }).breaks).toEqual([
      expect.objectContaining({ seq: 1, kind: 'anchor-mismatch' }),
    ]);
    const missing = buildEvidenceRecord(input(1, { generation: 3 }));
    expect(verifyEvidenceChain([missing], lineage, { groupId: G }).breaks[0]).toMatchObject({
      kind: 'anchor-mismatch',
    });
    // a rewritten generation record (another hash) no longer anchors the evidence
    const [first] = chainOf(1);
    const rewritten = [lineage[0]!, { ...lineage[1]!, hash: 'e'.repeat(64) }];
    expect(verifyEvidenceChain([first!], rewritten, { groupId: G }).ok).toBe(false);
  });

  it('evidence checkpoints: untrusted keys and edited statements fail; other chains’ checkpoints never pass', () => {
    const chain = chainOf(2);
    const cp = sign(chain[1]!);
    expect(cp.chain).toBe('evidence');
    const check = (c: unknown) =>
      verifyEvidenceChain(chain, lineage, { groupId: G, checkpoints: [c as never], keys }).checkpoints[0]?.status;
    expect(check(sign(chain[1]!, 9_000, other.privateKey))).toBe('unknown-key');
    expect(check({ ...cp, seq: 1, headHash: chain[0]!.hash })).toBe('bad-signature');
    // a drill checkpoint over the same head is not an evidence checkpoint (the chain name is signed), nor vice versa
    const drillCp = signDrillCheckpoint(
      { groupId: G, seq: 2, headHash: chain[1]!.hash, signedAtMs: 9_000 },
      { privateKey: pair.privateKey },
    );
    expect(check(drillCp)).toBe('bad-signature');
    expect(check({ ...drillCp, chain: 'evidence' })).toBe('bad-signature');
    expect(verifyDrillChain([], [cp as never], keys, { groupId: G }).checkpoints[0]?.status).toBe('bad-signature');
  });

  it('verifyChain reports the evidence chain with the generations, and its breaks fail the whole check', () => {
    const chain = chainOf(2);
    const ok = verifyChain(lineage, [], keys, { groupId: G, evidence: { records: chain, checkpoints: [] } });
    expect(ok.ok).toBe(true);
    expect(ok.evidence).toMatchObject({ ok: true, length: 2, unsigned: 2 });
    const edited = [chain[0]!, { ...chain[1]!, recordedAtMs: 1 }];
    const bad = verifyChain(lineage, [], keys, { groupId: G, evidence: { records: edited, checkpoints: [] } });
    expect(bad.ok).toBe(false);
    expect(bad.evidence?.breaks[0]).toMatchObject({ seq: 2, kind: 'hash-mismatch' });
  });
});
