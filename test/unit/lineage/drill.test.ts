import { describe, expect, it } from 'vitest';
import type { DrillRecord, GroupId } from '../../../src/core/index.js';
import {
  buildDrillRecord,
  checkpointKeyPairFromSeed,
  checkpointKeyring,
  type DrillRecordInput,
  GENESIS_PREV_HASH,
  signCheckpoint,
  signDrillCheckpoint,
  verifyDrillChain,
} from '../../../src/lineage/index.js';

const G = 'orders' as GroupId;
const pair = checkpointKeyPairFromSeed(Buffer.alloc(32, 3));
const other = checkpointKeyPairFromSeed(Buffer.alloc(32, 4));
const keys = checkpointKeyring([pair.publicKey]);
const lineage = [
  { generation: 1, hash: 'a'.repeat(64) },
  { generation: 2, hash: 'b'.repeat(64) },
] as never[];

function input(seq: number, over: Partial<DrillRecordInput> = {}): DrillRecordInput {
  return {
    kind: 'drill',
    groupId: G,
    seq,
    drillId: `drill-${seq}`,
    trigger: { kind: 'schedule', by: 'tick' },
    startedAtMs: 1_000 * seq,
    finishedAtMs: 1_000 * seq + 10,
    lineageHead: { generation: 2, hash: 'b'.repeat(64) },
    generationsChecked: [1, 2],
    switchover: {
      wrappedAt: null,
      keyVersionId: null,
      ciphertext: null,
      plaintextSha256: null,
      aad: [],
      switchoverMs: 12,
      answeredBy: null,
    },
    members: [
      {
        role: 'primary',
        region: 'us-south',
        instanceId: 'i',
        keyId: 'k',
        crn: 'c',
        endpoints: { public: 'u', private: null },
        health: 'ok',
        canaries: [],
        switchover: null,
      },
    ] as never,
    result: 'passed',
    problems: [],
    ...over,
  };
}

function chain(n: number): DrillRecord[] {
  const out: DrillRecord[] = [];
  for (let i = 1; i <= n; i++) out.push(buildDrillRecord(input(i), out.at(-1)));
  return out;
}

const sign = (d: DrillRecord, key = pair.privateKey) =>
  signDrillCheckpoint({ groupId: G, seq: d.seq, headHash: d.hash, signedAtMs: 5 }, { privateKey: key });

describe('drill records', () => {
  it('chain from the genesis hash, one seq after another, and verify with their checkpoint', () => {
    // Arrange
    const drills = chain(3);
    // Act
    const report = verifyDrillChain(drills, [sign(drills[2]!)], keys, { groupId: G, lineage });
    // Assert
    expect(drills[0]!.prevHash).toBe(GENESIS_PREV_HASH);
    expect(drills[1]!.prevHash).toBe(drills[0]!.hash);
    expect(report).toMatchObject({ ok: true, length: 3, headSeq: 3, signedThroughSeq: 3, unsigned: 0 });
  });

  it.each([
    ['a seq that does not follow', () => buildDrillRecord(input(3), chain(1)[0]), /seq must be 2/],
    ['a first drill that is not 1', () => buildDrillRecord(input(2)), /seq 1/],
    ['a pass with problems', () => buildDrillRecord(input(1, { problems: ['x'] })), /cannot pass/],
    [
      'a bad anchor hash',
      () => buildDrillRecord(input(1, { lineageHead: { generation: 1, hash: 'zz' } })),
      /lineageHead/,
    ],
  ])('refuses %s', (_case, build, message) => {
    expect(build).toThrow(message);
  });

  it.each([
    [
      'an edited drill',
      (d: DrillRecord[]) => [d[0]!, { ...d[1]!, result: 'failed' as const }, d[2]!],
      'hash-mismatch',
      2,
    ],
    ['a deleted drill', (d: DrillRecord[]) => [d[0]!, d[2]!], 'gap', 3],
    ['the first drill deleted', (d: DrillRecord[]) => [d[1]!, d[2]!], 'gap', 2],
    ['a reordered chain', (d: DrillRecord[]) => [d[1]!, d[0]!, d[2]!], 'out-of-order', 1],
    ['a drill stored twice', (d: DrillRecord[]) => [...d, d[1]!], 'duplicate', 2],
    ['a foreign drill', (d: DrillRecord[]) => [...d, { ...d[0]!, groupId: 'other' as GroupId }], 'wrong-group', 1],
    [
      'a drill re-hashed after an edit',
      (d: DrillRecord[]) => {
        const { hash: _h, prevHash: _p, ...rest } = d[1]!;
        return [d[0]!, buildDrillRecord({ ...rest, problems: ['x'], result: 'failed' }, d[0]), d[2]!];
      },
      'prev-hash-mismatch',
      3,
    ],
    [
      'a drill anchored to a generation the chain does not hold',
      () => [buildDrillRecord(input(1, { lineageHead: { generation: 2, hash: 'c'.repeat(64) } }))],
      'anchor-mismatch',
      1,
    ],
  ])('locates %s', (_case, mutate, kind, seq) => {
    const report = verifyDrillChain(mutate(chain(3)), [], keys, { groupId: G, lineage });
    expect(report.ok).toBe(false);
    expect(report.breaks).toContainEqual(expect.objectContaining({ kind, seq }));
  });

  it('judges checkpoints: deleted tail, untrusted key, tampered field, and never a generation checkpoint', () => {
    const drills = chain(3);
    const cp = sign(drills[2]!);
    const statuses = (cps: never[], records = drills) =>
      verifyDrillChain(records, cps, keys, { groupId: G }).checkpoints.map((c) => c.status);
    expect(statuses([cp] as never[], drills.slice(0, 2))).toEqual(['beyond-chain']);
    expect(statuses([sign(drills[2]!, other.privateKey)] as never[])).toEqual(['unknown-key']);
    expect(statuses([{ ...cp, signedAtMs: 6 }] as never[])).toEqual(['bad-signature']);
    const generationCp = signCheckpoint(
      { groupId: G, generation: 3, headHash: drills[2]!.hash, signedAtMs: 5 },
      { privateKey: pair.privateKey },
    );
    // the same head signed as a generation checkpoint does not pass as a drill checkpoint
    expect(statuses([{ ...generationCp, chain: 'drills', seq: 3 }] as never[])).toEqual(['bad-signature']);
    const rewritten = [
      drills[0]!,
      drills[1]!,
      buildDrillRecord(input(3, { switchover: { ...input(3).switchover, switchoverMs: 1 } }), drills[1]),
    ];
    expect(statuses([cp] as never[], rewritten)).toEqual(['head-mismatch']);
  });
});
