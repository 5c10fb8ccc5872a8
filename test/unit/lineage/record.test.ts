import { describe, expect, it } from 'vitest';
import { hasCode, type LineageRecord } from '../../../src/core/index.js';
import {
  buildLineageRecord,
  canonicalJson,
  GENESIS_PREV_HASH,
  hashRecord,
  type LineageRecordInput,
  sha256Hex,
} from '../../../src/lineage/index.js';
import { buildChain, GROUP, recordInput } from './fixtures.js';

describe('hashRecord', () => {
  it('hashes the canonical JSON of every field except hash', () => {
    // Arrange
    const rec = buildLineageRecord(recordInput(1));
    const { hash: _drop, ...body } = rec;
    // Act
    const h = hashRecord(rec);
    // Assert
    expect(h).toBe(sha256Hex(canonicalJson(body)));
    expect(h).toBe(rec.hash);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ignores CouchDB metadata fields but not other extra fields', () => {
    // Arrange
    const rec = buildLineageRecord(recordInput(1));
    // Act / Assert
    expect(hashRecord({ ...rec, _id: 'lineage:payments:1', _rev: '1-abc' })).toBe(rec.hash);
    expect(hashRecord({ ...rec, type: 'lineage' })).not.toBe(rec.hash);
  });
});

describe('buildLineageRecord', () => {
  it('starts a chain at generation 1 with the genesis prevHash', () => {
    // Arrange / Act
    const rec = buildLineageRecord(recordInput(1));
    // Assert
    expect(rec.prevHash).toBe(GENESIS_PREV_HASH);
    expect(GENESIS_PREV_HASH).toBe('0'.repeat(64));
  });

  it.each([2, 7, 250])('starts an adopted chain at generation %i with the genesis prevHash', (g) => {
    // Arrange / Act
    const rec = buildLineageRecord(recordInput(g));
    // Assert
    expect(rec.generation).toBe(g);
    expect(rec.prevHash).toBe(GENESIS_PREV_HASH);
    expect(rec.hash).toBe(hashRecord(rec));
  });

  it('links the next record to the previous hash', () => {
    // Arrange
    const [r5, r6] = buildChain(5, 6);
    // Assert
    expect(r6!.prevHash).toBe(r5!.hash);
    expect(r6!.hash).not.toBe(r5!.hash);
  });

  it('returns a plain-data copy without undefined fields', () => {
    // Arrange
    const input = { ...recordInput(1), notes: undefined };
    // Act
    const rec = buildLineageRecord(input);
    // Assert
    expect('notes' in rec).toBe(false);
    expect(rec.members).not.toBe(input.members);
    expect(rec.members).toEqual(input.members);
  });

  it('keeps notes when given', () => {
    // Arrange / Act
    const rec = buildLineageRecord({ ...recordInput(1), notes: ['foreign version on eu-de'] });
    // Assert
    expect(rec.notes).toEqual(['foreign version on eu-de']);
  });

  type Mutate = (r: LineageRecordInput) => unknown;
  const member0 = (r: LineageRecordInput) => r.members[0] as unknown as Record<string, unknown>;
  it.each<{ case: string; mutate: Mutate; field: string }>([
    { case: 'not an object', mutate: () => null, field: 'record' },
    { case: 'bad group id', mutate: (r) => ({ ...r, groupId: 'Bad Group' }), field: 'groupId' },
    { case: 'generation 0', mutate: (r) => ({ ...r, generation: 0 }), field: 'generation' },
    { case: 'fractional generation', mutate: (r) => ({ ...r, generation: 1.5 }), field: 'generation' },
    { case: 'empty fingerprint', mutate: (r) => ({ ...r, fingerprint: '' }), field: 'fingerprint' },
    { case: 'missing trigger', mutate: (r) => ({ ...r, trigger: null }), field: 'trigger' },
    { case: 'unknown trigger kind', mutate: (r) => ({ ...r, trigger: { kind: 'cron', by: 'x' } }), field: 'trigger' },
    { case: 'trigger without by', mutate: (r) => ({ ...r, trigger: { kind: 'operator', by: '' } }), field: 'trigger' },
    { case: 'missing runId', mutate: (r) => ({ ...r, runId: undefined }), field: 'runId' },
    { case: 'negative startedAtMs', mutate: (r) => ({ ...r, startedAtMs: -1 }), field: 'startedAtMs' },
    { case: 'string finishedAtMs', mutate: (r) => ({ ...r, finishedAtMs: '1' }), field: 'finishedAtMs' },
    {
      case: 'finished before started',
      mutate: (r) => ({ ...r, finishedAtMs: r.startedAtMs - 1 }),
      field: 'finishedAtMs',
    },
    { case: 'no members', mutate: (r) => ({ ...r, members: [] }), field: 'members' },
    { case: 'members not an array', mutate: (r) => ({ ...r, members: {} }), field: 'members' },
    { case: 'member not an object', mutate: (r) => ({ ...r, members: [7] }), field: 'members[0]' },
    {
      case: 'member with unknown role',
      mutate: (r) => ({ ...r, members: [{ ...member0(r), role: 'backup' }] }),
      field: 'members[0].role',
    },
    {
      case: 'member without keyVersionId',
      mutate: (r) => ({ ...r, members: [{ ...member0(r), keyVersionId: '' }] }),
      field: 'members[0].keyVersionId',
    },
    {
      case: 'member with bad rotatedAtMs',
      mutate: (r) => ({ ...r, members: [{ ...member0(r), rotatedAtMs: Number.NaN }] }),
      field: 'members[0].rotatedAtMs',
    },
    {
      case: 'member without evidence array',
      mutate: (r) => ({ ...r, members: [{ ...member0(r), evidence: undefined }] }),
      field: 'members[0].evidence',
    },
    {
      case: 'two primaries',
      mutate: (r) => ({ ...r, members: r.members.map((m) => ({ ...m, role: 'primary' })) }),
      field: 'members',
    },
    {
      case: 'no primary',
      mutate: (r) => ({ ...r, members: r.members.map((m) => ({ ...m, role: 'duplicate' })) }),
      field: 'members',
    },
    {
      case: 'same CRN twice',
      mutate: (r) => ({ ...r, members: [r.members[0], { ...r.members[1], crn: r.members[0]!.crn }] }),
      field: 'members',
    },
    { case: 'verification not an array', mutate: (r) => ({ ...r, verification: null }), field: 'verification' },
    { case: 'unknown status', mutate: (r) => ({ ...r, status: 'done' }), field: 'status' },
    { case: 'notes not an array', mutate: (r) => ({ ...r, notes: 'x' }), field: 'notes' },
    { case: 'notes with a number', mutate: (r) => ({ ...r, notes: ['a', 1] }), field: 'notes' },
  ])('rejects $case with VALIDATION_FAILED naming $field', ({ mutate, field }) => {
    // Arrange
    const input = mutate(recordInput(1)) as LineageRecordInput;
    // Act
    let caught: unknown;
    try {
      buildLineageRecord(input);
    } catch (err) {
      caught = err;
    }
    // Assert
    expect(hasCode(caught, 'VALIDATION_FAILED')).toBe(true);
    expect((caught as { details: { field: string } }).details.field).toBe(field);
    expect((caught as Error).message).toMatch(/^Invalid lineage record: /);
  });

  it.each<{ case: string; prev: () => LineageRecord; input: LineageRecordInput; code: string; msg: RegExp }>([
    {
      case: 'a previous record of another group',
      prev: () => buildLineageRecord(recordInput(1, 'other' as never)),
      input: recordInput(2),
      code: 'VALIDATION_FAILED',
      msg: /belongs to group other/,
    },
    {
      case: 'a skipped generation',
      prev: () => buildLineageRecord(recordInput(1)),
      input: recordInput(3),
      code: 'VALIDATION_FAILED',
      msg: /generation must be 2 \(previous is 1\)/,
    },
    {
      case: 'a repeated generation',
      prev: () => buildLineageRecord(recordInput(1)),
      input: recordInput(1),
      code: 'VALIDATION_FAILED',
      msg: /generation must be 2/,
    },
    {
      case: 'an edited head',
      prev: () => ({ ...buildLineageRecord(recordInput(1)), fingerprint: 'fp1:forged' }),
      input: recordInput(2),
      code: 'CHAIN_BROKEN',
      msg: /does not match its hash/,
    },
    {
      case: 'a head with a malformed hash',
      prev: () => ({ ...buildLineageRecord(recordInput(1)), hash: 'abc' }),
      input: recordInput(2),
      code: 'CHAIN_BROKEN',
      msg: /does not match its hash/,
    },
  ])('refuses to chain onto $case', ({ prev, input, code, msg }) => {
    // Arrange
    const p = prev();
    // Act / Assert
    expect(() => buildLineageRecord(input, p)).toThrow(msg);
    try {
      buildLineageRecord(input, p);
    } catch (err) {
      expect(hasCode(err, code as never)).toBe(true);
    }
  });

  it('is deterministic', () => {
    // Arrange / Act / Assert
    expect(buildChain(1, 3)).toEqual(buildChain(1, 3));
    expect(buildLineageRecord(recordInput(1)).groupId).toBe(GROUP);
  });
});
