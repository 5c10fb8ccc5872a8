import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Checkpoint, LineageRecord } from '../../../src/core/index.js';
import {
  type ChainReport,
  checkpointKeyring,
  GENESIS_PREV_HASH,
  hashRecord,
  signCheckpoint,
  verifyChain,
} from '../../../src/lineage/index.js';
import { buildChain, GROUP, recordInput, signerA, signerB, T0 } from './fixtures.js';

const ring = checkpointKeyring([signerA.publicKey]);
const cpFor = (r: LineageRecord, key = signerA.privateKey): Checkpoint =>
  signCheckpoint(
    { groupId: r.groupId, generation: r.generation, headHash: r.hash, signedAtMs: T0 + r.generation },
    { privateKey: key },
  );
const rehash = (r: LineageRecord): LineageRecord => ({ ...r, hash: hashRecord(r) });
/** Re-hashes `records` from index `from` on, re-linking each to the previous one (an attacker covering an edit). */
const rehashFrom = (records: LineageRecord[], from: number): LineageRecord[] => {
  const out = [...records];
  for (let i = from; i < out.length; i++) {
    const prevHash = i === 0 ? GENESIS_PREV_HASH : out[i - 1]!.hash;
    out[i] = rehash({ ...out[i]!, prevHash });
  }
  return out;
};
const kinds = (r: ChainReport) => r.breaks.map((b) => [b.kind, b.generation]);

describe('verifyChain — intact chains', () => {
  it.each([
    { case: 'from generation 1', from: 1, to: 6 },
    { case: 'adopted at generation 5', from: 5, to: 9 },
    { case: 'a single adopted record', from: 42, to: 42 },
  ])('accepts a chain $case with its checkpoints', ({ from, to }) => {
    // Arrange
    const chain = buildChain(from, to);
    const cps = [cpFor(chain.at(-1)!), cpFor(chain[0]!)];
    // Act
    const report = verifyChain(chain, cps, ring);
    // Assert
    expect(report).toMatchObject({
      ok: true,
      groupId: GROUP,
      length: to - from + 1,
      firstGeneration: from,
      headGeneration: to,
      headHash: chain.at(-1)!.hash,
      breaks: [],
      signedThroughGeneration: to,
    });
    expect(report.firstBreak).toBeUndefined();
    expect(report.checkpoints.map((c) => [c.generation, c.status])).toEqual([
      [from, 'valid'],
      [to, 'valid'],
    ]);
    expect(report.checkpoints[0]!.message).toMatch(/matches the head signed at 2026-01-01T02:00:00/);
  });

  it('reports an empty chain without checkpoints as ok and without generations', () => {
    // Act
    const report = verifyChain([], [], ring);
    // Assert
    expect(report).toEqual({ ok: true, length: 0, breaks: [], checkpoints: [] });
  });

  it('accepts records that carry CouchDB metadata', () => {
    // Arrange
    const chain = buildChain(1, 3).map((r) => ({ ...r, _id: `lineage:${r.generation}`, _rev: '1-x' }));
    // Act / Assert
    expect(verifyChain(chain, [], ring).ok).toBe(true);
  });
});

describe('verifyChain — tampering is detected and located', () => {
  const chain = buildChain(1, 6);
  const head = chain.at(-1)!;

  it.each<{
    case: string;
    records: () => LineageRecord[];
    checkpoints?: () => Checkpoint[];
    breaks: [string, number][];
    cpStatus?: [number, string][];
    message?: RegExp;
  }>([
    {
      case: 'an edited record',
      records: () => chain.map((r) => (r.generation === 3 ? { ...r, fingerprint: 'fp1:forged' } : r)),
      breaks: [['hash-mismatch', 3]],
      message: /Generation 3 was edited after it was recorded/,
    },
    {
      case: 'an edited member version',
      records: () =>
        chain.map((r) =>
          r.generation === 2 ? { ...r, members: r.members.map((m) => ({ ...m, keyVersionId: 'x' as never })) } : r,
        ),
      breaks: [['hash-mismatch', 2]],
    },
    {
      case: 'a record altered into non-JSON data',
      records: () => chain.map((r) => (r.generation === 4 ? { ...r, startedAtMs: Number.NaN } : r)),
      breaks: [['hash-mismatch', 4]],
      message: /not valid record data .*not finite/,
    },
    {
      case: 'a deleted middle record',
      records: () => chain.filter((r) => r.generation !== 3),
      breaks: [['gap', 4]],
      message: /generation 3 is missing between generation 2 and 4/,
    },
    {
      case: 'several deleted middle records',
      records: () => chain.filter((r) => r.generation !== 3 && r.generation !== 4),
      breaks: [['gap', 5]],
      message: /generations 3\.\.4 are missing/,
    },
    {
      case: 'deleted first records',
      records: () => chain.slice(2),
      breaks: [['gap', 3]],
      message: /records before generation 3 were deleted/,
    },
    {
      case: 'a deleted tail under a checkpoint',
      records: () => chain.slice(0, 4),
      checkpoints: () => [cpFor(chain[1]!), cpFor(head)],
      breaks: [],
      cpStatus: [
        [2, 'valid'],
        [6, 'beyond-chain'],
      ],
      message: /signed generation 6 .* chain ends at generation 4: records after that were deleted/,
    },
    {
      case: 'a chain deleted entirely under a checkpoint',
      records: () => [],
      checkpoints: () => [cpFor(head)],
      breaks: [],
      cpStatus: [[6, 'beyond-chain']],
      message: /chain ends at no generation/,
    },
    {
      case: 'reordered records',
      records: () => [chain[0]!, chain[1]!, chain[3]!, chain[2]!, chain[4]!, chain[5]!],
      breaks: [['out-of-order', 3]],
      message: /Generation 3 is stored after generation 4: the records were reordered/,
    },
    {
      case: 'a record edited and re-hashed',
      records: () => chain.map((r) => (r.generation === 3 ? rehash({ ...r, fingerprint: 'fp1:forged' }) : r)),
      checkpoints: () => [cpFor(chain[2]!), cpFor(head)],
      breaks: [['prev-hash-mismatch', 4]],
      cpStatus: [
        [3, 'head-mismatch'],
        [6, 'valid'],
      ],
      message: /generation 3 was rewritten \(and re-hashed\)/,
    },
    {
      case: 'a record edited and the rest of the chain re-hashed',
      records: () =>
        rehashFrom(
          chain.map((r) => (r.generation === 4 ? { ...r, status: 'complete' as const, notes: ['x'] } : r)),
          3,
        ),
      checkpoints: () => [cpFor(chain[1]!), cpFor(head)],
      breaks: [],
      cpStatus: [
        [2, 'valid'],
        [6, 'head-mismatch'],
      ],
      message: /a record from generation 3 to generation 6 was rewritten and the chain re-hashed/,
    },
    {
      case: 'the whole chain re-hashed with no older checkpoint',
      records: () =>
        rehashFrom(
          chain.map((r) => (r.generation === 1 ? { ...r, fingerprint: 'fp1:x' } : r)),
          0,
        ),
      checkpoints: () => [cpFor(head)],
      breaks: [],
      cpStatus: [[6, 'head-mismatch']],
      message: /from the start of the chain to generation 6/,
    },
    {
      case: 'a rewritten chain whose checkpoint was re-signed with another key',
      records: () =>
        rehashFrom(
          chain.map((r) => (r.generation === 5 ? { ...r, fingerprint: 'fp1:y' } : r)),
          4,
        ),
      checkpoints: () => [
        cpFor(
          rehashFrom(
            chain.map((r) => (r.generation === 5 ? { ...r, fingerprint: 'fp1:y' } : r)),
            4,
          ).at(-1)!,
          signerB.privateKey,
        ),
      ],
      breaks: [],
      cpStatus: [[6, 'unknown-key']],
      message: /not a trusted checkpoint key/,
    },
    {
      case: 'a checkpoint with a tampered signature',
      records: () => chain,
      checkpoints: () => [{ ...cpFor(head), signature: Buffer.alloc(64, 1).toString('base64') }],
      breaks: [],
      cpStatus: [[6, 'bad-signature']],
      message: /signature that does not match its fields/,
    },
    {
      case: 'a checkpoint moved to a rewritten head',
      records: () => chain,
      checkpoints: () => [{ ...cpFor(head), headHash: 'ee'.repeat(32) }],
      breaks: [],
      cpStatus: [[6, 'bad-signature']],
    },
    {
      case: 'a record of another group',
      records: () => [...chain.slice(0, 3), buildChain(4, 4, 'other' as never)[0]!, ...chain.slice(3)],
      breaks: [['wrong-group', 4]],
      message: /A record of group other \(generation 4\) is stored in the chain of payments/,
    },
    {
      case: 'a duplicated record',
      records: () => [...chain.slice(0, 3), chain[2]!, ...chain.slice(3)],
      breaks: [['duplicate', 3]],
      message: /Generation 3 is stored twice \(identical copies\)/,
    },
    {
      case: 'a forked generation',
      records: () => [...chain, rehash({ ...chain[3]!, fingerprint: 'fp1:fork' })],
      breaks: [['duplicate', 4]],
      message: /Two different records claim generation 4/,
    },
    {
      case: 'a checkpoint over a deleted middle record',
      records: () => chain.filter((r) => r.generation !== 3),
      checkpoints: () => [cpFor(chain[2]!)],
      breaks: [['gap', 4]],
      cpStatus: [[3, 'head-mismatch']],
      message: /no record for it: it was deleted/,
    },
    {
      case: 'a checkpoint of another group',
      records: () => chain,
      checkpoints: () => [cpFor(buildChain(1, 1, 'other' as never)[0]!)],
      breaks: [],
      cpStatus: [[1, 'wrong-group']],
      message: /Checkpoint for group other/,
    },
  ])('$case', ({ records, checkpoints, breaks, cpStatus, message }) => {
    // Arrange
    const recs = records();
    const cps = checkpoints?.() ?? [];
    // Act
    const report = verifyChain(recs, cps, ring, { groupId: GROUP });
    // Assert
    expect(report.ok).toBe(false);
    expect(kinds(report)).toEqual(breaks);
    expect(report.firstBreak).toEqual(report.breaks[0]);
    if (cpStatus) expect(report.checkpoints.map((c) => [c.generation, c.status])).toEqual(cpStatus);
    if (message) {
      const all = [...report.breaks.map((b) => b.message), ...report.checkpoints.map((c) => c.message)].join('\n');
      expect(all).toMatch(message);
    }
  });

  it('orders breaks by generation and points firstBreak at the earliest', () => {
    // Arrange: delete 5, edit 2
    const recs = chain
      .filter((r) => r.generation !== 5)
      .map((r) => (r.generation === 2 ? { ...r, runId: 'run-x' as never } : r));
    // Act
    const report = verifyChain(recs, [], ring);
    // Assert
    expect(kinds(report)).toEqual([
      ['hash-mismatch', 2],
      ['gap', 6],
    ]);
    expect(report.firstBreak?.generation).toBe(2);
  });

  it('takes the group from the first checkpoint when there are no records', () => {
    // Act
    const report = verifyChain([], [cpFor(head)], ring);
    // Assert
    expect(report.groupId).toBe(GROUP);
    expect(report.firstGeneration).toBeUndefined();
  });

  it('detects any single-field mutation of any record of a valid chain', () => {
    // Arrange
    const base = buildChain(3, 8);
    const cps = [cpFor(base.at(-1)!)];
    const fields = ['fingerprint', 'runId', 'startedAtMs', 'finishedAtMs', 'status', 'prevHash', 'hash', 'generation'];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: base.length - 1 }),
        fc.constantFrom(...fields),
        fc.oneof(fc.string(), fc.integer(), fc.constantFrom('degraded', 'superseded')),
        (index, field, value) => {
          const original = base[index]! as unknown as Record<string, unknown>;
          fc.pre(original[field] !== value);
          // Act
          const mutated = base.map((r, i) => (i === index ? ({ ...r, [field]: value } as LineageRecord) : r));
          const report = verifyChain(mutated, cps, ring);
          // Assert
          expect(report.ok).toBe(false);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('detects an edit even when the attacker re-hashes the rest of the chain, through the checkpoint', () => {
    // Arrange
    const base = buildChain(1, 6);
    const cps = [cpFor(base.at(-1)!)];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.string({ minLength: 1 }), (index, fp) => {
        // Act
        const edited = base.map((r, i) => (i === index ? { ...r, fingerprint: `fp1:${fp}` } : r));
        const report = verifyChain(rehashFrom(edited, index), cps, ring);
        // Assert
        expect(report.ok).toBe(false);
        expect(report.breaks).toEqual([]);
        expect(report.checkpoints[0]!.status).toBe('head-mismatch');
      }),
      { numRuns: 100 },
    );
  });

  it('uses the first record of a duplicate pair for linking', () => {
    // Arrange: a bogus second copy of 2 must not hide the real link 2 -> 3
    const recs = [chain[0]!, chain[1]!, { ...chain[1]!, hash: 'f'.repeat(64) }, chain[2]!];
    // Act
    const report = verifyChain(recs, [], ring);
    // Assert
    expect(kinds(report)).toEqual([['duplicate', 2]]);
    expect(recordInput(1).groupId).toBe(GROUP);
  });
});

describe('verifyChain — incremental (after a verified head)', () => {
  it('continues a verified chain: the same verdict as checking it whole', () => {
    // Arrange: generations 1..8, verified through 5
    const chain = buildChain(1, 8);
    const head = chain[4]!;
    const cps = [cpFor(chain[2]!), cpFor(chain[7]!)];
    // Act: only 6..8 and the checkpoints, with generation 3's hash from the earlier check
    const report = verifyChain(chain.slice(5), cps, ring, {
      after: { generation: head.generation, hash: head.hash },
      earlier: [{ generation: 3, hash: chain[2]!.hash }],
    });
    // Assert
    expect(report).toMatchObject({ ok: true, length: 3, firstGeneration: 6, headGeneration: 8, breaks: [] });
    expect(report.checkpoints.map((c) => [c.generation, c.status])).toEqual([
      [3, 'valid'],
      [8, 'valid'],
    ]);
  });

  it('finds a gap, a broken link and a checkpoint over a changed earlier record', () => {
    const chain = buildChain(1, 8);
    const head = chain[4]!;
    // a gap: 6 is missing
    expect(kinds(verifyChain(chain.slice(6), [], ring, { after: head }))).toEqual([['gap', 7]]);
    // a broken link: 6 does not link to the verified head
    const unlinked = rehash({ ...chain[5]!, prevHash: 'e'.repeat(64) });
    expect(kinds(verifyChain([unlinked], [], ring, { after: head }))).toEqual([['prev-hash-mismatch', 6]]);
    // a checkpoint over generation 3, whose record now hashes differently
    const report = verifyChain([], [cpFor(chain[2]!)], ring, {
      after: head,
      earlier: [{ generation: 3, hash: 'f'.repeat(64) }],
    });
    expect(report.checkpoints.map((c) => c.status)).toEqual(['head-mismatch']);
    // a record at or before the verified head is reported, never silently re-verified
    expect(kinds(verifyChain(chain.slice(4), [], ring, { after: head }))).toEqual([['duplicate', 5]]);
  });
});
