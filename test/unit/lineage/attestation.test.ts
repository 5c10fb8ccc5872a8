import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { KeyCrn, LineageRecord } from '../../../src/core/index.js';
import {
  type AttestationResult,
  buildLineageRecord,
  findMemberByKeyVersion,
  judgeAttestation,
  memberVersionMap,
  planAttestation,
  summarizeGeneration,
} from '../../../src/lineage/index.js';
import { CRNS, canaryPlaintext, recordInput } from './fixtures.js';

const record = buildLineageRecord(recordInput(3));
const withCanaries = (extra: Partial<LineageRecord['verification'][number]>[]): LineageRecord =>
  buildLineageRecord({
    ...recordInput(3),
    verification: [...recordInput(3).verification, ...extra.map((e) => ({ ...recordInput(3).verification[0]!, ...e }))],
  });
const version = (crn: KeyCrn) => record.members.find((m) => m.crn === crn)!.keyVersionId;
const okResults = (r: LineageRecord = record): AttestationResult[] =>
  planAttestation(r).map((u) => ({ id: u.id, plaintext: canaryPlaintext(3), keyVersionId: u.expectedKeyVersionId }));

describe('planAttestation', () => {
  it('plans one unwrap per member, preferring a canary wrapped elsewhere', () => {
    // Arrange: canary 1 is wrapped at the second member
    const r = withCanaries([{ wrappedAt: CRNS[1]!, ciphertext: 'ct-dup' }]);
    // Act
    const plan = planAttestation(r);
    // Assert
    expect(plan.map((u) => [u.crn, u.canaryIndex])).toEqual([
      [CRNS[0], 1],
      [CRNS[1], 0],
      [CRNS[2], 0],
    ]);
    expect(plan[0]).toMatchObject({
      id: `3:1:${CRNS[0]}`,
      role: 'primary',
      region: 'us-south',
      ciphertext: 'ct-dup',
      aad: ['payments', '3'],
      expectedKeyVersionId: version(CRNS[0]!),
    });
  });

  it('falls back to a canary wrapped at the member itself', () => {
    // Arrange: the only canary was wrapped at the primary
    // Act
    const plan = planAttestation(record);
    // Assert
    expect(plan.find((u) => u.crn === CRNS[0])?.canaryIndex).toBe(0);
  });

  it('skips failed canaries and can unwrap every canary at every member', () => {
    // Arrange
    const r = withCanaries([
      { ok: false, ciphertext: 'bad' },
      { wrappedAt: CRNS[2]!, ciphertext: 'ct-eu' },
    ]);
    // Act
    const plan = planAttestation(r, { allCanaries: true });
    // Assert
    expect(plan).toHaveLength(6);
    expect(plan.some((u) => u.ciphertext === 'bad')).toBe(false);
  });

  it('plans nothing when no canary passed', () => {
    // Arrange
    const r = withCanaries([]);
    const none = { ...r, verification: r.verification.map((c) => ({ ...c, ok: false })) };
    // Act / Assert
    expect(planAttestation(none)).toEqual([]);
  });
});

describe('judgeAttestation', () => {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('is ok when every member unwraps to the recorded plaintext at the recorded version', () => {
    // Act
    const report = judgeAttestation(record, okResults());
    // Assert
    expect(report).toMatchObject({ groupId: 'payments', generation: 3, ok: true });
    expect(report.members.map((m) => m.status)).toEqual(['ok', 'ok', 'ok']);
    expect(report.members[0]!.checked).toBe(1);
  });

  it.each<{ case: string; results: (ids: string[]) => AttestationResult[]; status: string; reason: RegExp }>([
    {
      case: 'a hash given instead of bytes (upper-case hex)',
      results: (ids) => ids.map((id) => ({ id, plaintextSha256: sha(canaryPlaintext(3)).toUpperCase() })),
      status: 'ok',
      reason: /Unwrapped 1 canary/,
    },
    {
      case: 'a member that unwraps other bytes',
      results: (ids) => ids.map((id) => ({ id, plaintext: canaryPlaintext(4) })),
      status: 'mismatch',
      reason: /differ from the recorded canary/,
    },
    {
      case: 'a non-hex hash of the same length',
      results: (ids) => ids.map((id) => ({ id, plaintextSha256: 'é'.repeat(64) })),
      status: 'mismatch',
      reason: /differ/,
    },
    {
      case: 'a malformed hash',
      results: (ids) => ids.map((id) => ({ id, plaintextSha256: 'abc' })),
      status: 'mismatch',
      reason: /differ/,
    },
    {
      case: 'a member that reports another version',
      results: (ids) => ids.map((id) => ({ id, plaintext: canaryPlaintext(3), keyVersionId: 'other-version' })),
      status: 'mismatch',
      reason: /unwrapped by version other-version, but generation 3 is recorded as version/,
    },
    {
      case: 'a member that cannot unwrap',
      results: (ids) => ids.map((id) => ({ id, error: 'UNPROCESSABLE: unable to unwrap' })),
      status: 'missing',
      reason: /unwrap failed \(UNPROCESSABLE: unable to unwrap\)/,
    },
    {
      case: 'no result',
      results: () => [{ id: 'unrelated', error: 'x' }],
      status: 'missing',
      reason: /no unwrap result/,
    },
  ])('judges $case', ({ results, status, reason }) => {
    // Arrange
    const ids = planAttestation(record).map((u) => u.id);
    // Act
    const report = judgeAttestation(record, results(ids));
    // Assert
    expect(report.members.map((m) => m.status)).toEqual([status, status, status]);
    expect(report.members[1]!.reason).toMatch(reason);
    expect(report.ok).toBe(status === 'ok');
  });

  it('prefers mismatch over missing when a member both fails and differs', () => {
    // Arrange
    const r = withCanaries([{ wrappedAt: CRNS[2]! }]);
    const plan = planAttestation(r, { allCanaries: true }).filter((u) => u.crn === CRNS[0]);
    const results: AttestationResult[] = [
      { id: plan[0]!.id, error: 'timeout' },
      { id: plan[1]!.id, plaintext: Buffer.from('nope') },
    ];
    // Act
    const report = judgeAttestation(r, results, { allCanaries: true });
    // Assert
    expect(report.members[0]).toMatchObject({ status: 'mismatch', checked: 2 });
    expect(report.members[0]!.reason).toMatch(/canary 0: unwrap failed.*; canary 1: unwrapped bytes differ/);
  });

  it('reports missing for every member when there is no canary to unwrap', () => {
    // Arrange
    const none = { ...record, verification: [] };
    // Act
    const report = judgeAttestation(none, []);
    // Assert
    expect(report.ok).toBe(false);
    expect(report.members.every((m) => m.status === 'missing' && m.checked === 0)).toBe(true);
    expect(report.members[0]!.reason).toMatch(/no passing canary/);
  });
});

describe('generation summaries', () => {
  it('maps every member CRN to its key version and finds a member by version', () => {
    // Act
    const map = memberVersionMap(record);
    // Assert
    expect(Object.keys(map)).toEqual(CRNS);
    expect(map[CRNS[1]!]).toBe(version(CRNS[1]!));
    expect(findMemberByKeyVersion(record, version(CRNS[2]!))?.region).toBe('eu-de');
    expect(findMemberByKeyVersion(record, 'nope')).toBeUndefined();
  });

  it('summarizes a generation with the primary first', () => {
    // Arrange: put the primary last
    const r = { ...record, members: [...record.members.slice(1), record.members[0]!] };
    // Act
    const s = summarizeGeneration(r);
    // Assert
    expect(s).toMatchObject({
      groupId: 'payments',
      generation: 3,
      status: 'complete',
      durationMs: 90_000,
      regions: ['us-south', 'us-east', 'eu-de'],
      memberCount: 3,
      canaries: { total: 1, ok: 1 },
      evidenceCount: 3,
      hash: record.hash,
      primary: { crn: CRNS[0], region: 'us-south', keyVersionId: version(CRNS[0]!) },
    });
  });

  it('summarizes a record without a primary (as stored, even if malformed)', () => {
    // Arrange
    const r = {
      ...record,
      members: record.members.slice(1),
      verification: [{ ...record.verification[0]!, ok: false }],
    };
    // Act
    const s = summarizeGeneration(r);
    // Assert
    expect(s.primary).toBeUndefined();
    expect(s.regions).toEqual(['us-east', 'eu-de']);
    expect(s.canaries).toEqual({ total: 1, ok: 0 });
  });
});
