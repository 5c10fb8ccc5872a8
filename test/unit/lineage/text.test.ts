import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/core/index.js';
import {
  buildLineageRecord,
  checkLineageText,
  LINEAGE_TEXT_LIMITS,
  type LineageRecordInput,
  lineageTextProblem,
} from '../../../src/lineage/index.js';
import { recordInput } from './fixtures.js';

const HOSTILE = [
  '=HYPERLINK("http://evil.example/x","approved by alice (operator)")',
  '+cmd|" /C calc"!A0',
  '-2+3',
  '@SUM(A1:A2)',
  '\tleading tab',
  '\rleading CR',
  'two\nlines',
  'nul\u0000byte',
  'c1\u0085control',
  'bidi \u202eoverride',
  'isolate \u2067x\u2069',
  'line\u2028separator',
  'lone \ud800 surrogate',
  '',
];

describe('lineage text boundary', () => {
  it.each(HOSTILE.map((v) => ({ v })))('refuses $v', ({ v }) => {
    expect(lineageTextProblem(v, 'by')).toBeDefined();
  });

  it.each([
    'iam-ServiceId-0123',
    'cron:7b6c3c1e-0000-4000-8000-000000000000',
    'rotation before the audit, "quoted", with comma',
    'a=b is fine inside',
    'naïve café 日本 🔑',
  ])('accepts %s', (v) => {
    expect(lineageTextProblem(v, 'reason')).toBeUndefined();
  });

  it('bounds each kind of field by its own limit', () => {
    for (const [kind, max] of Object.entries(LINEAGE_TEXT_LIMITS)) {
      const k = kind as keyof typeof LINEAGE_TEXT_LIMITS;
      expect(lineageTextProblem('x'.repeat(max), k)).toBeUndefined();
      expect(lineageTextProblem('x'.repeat(max + 1), k)).toMatch(/at most/);
    }
  });

  it('throws VALIDATION_FAILED naming the field', () => {
    const err = (() => {
      try {
        checkLineageText('reason', '=1+1', 'reason');
      } catch (e) {
        return e;
      }
    })();
    expect(hasCode(err, 'VALIDATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/^reason must not start with/);
  });
});

describe('buildLineageRecord uses the boundary for every free-text field', () => {
  const withTrigger = (t: LineageRecordInput['trigger']): LineageRecordInput => ({ ...recordInput(1), trigger: t });
  const withEvidence = (patch: Record<string, unknown>): LineageRecordInput => {
    const input = recordInput(1);
    const [m0, ...rest] = input.members;
    return { ...input, members: [{ ...m0!, evidence: [{ ...m0!.evidence[0]!, ...patch }] }, ...rest] };
  };
  it.each([
    { $case: 'trigger.by', input: withTrigger({ kind: 'schedule', by: HOSTILE[0]! }) },
    { $case: 'trigger.reason', input: withTrigger({ kind: 'operator', by: 'alice', reason: '@SUM(1)' }) },
    { $case: 'a note', input: { ...recordInput(1), notes: ['ok', '=cmd'] } },
    { $case: 'evidence initiator', input: withEvidence({ initiator: 'AUDITOR-SIGNED-OFF:\nyes' }) },
    { $case: 'evidence correlationId', input: withEvidence({ correlationId: '+1' }) },
    { $case: 'evidence eventId too long', input: withEvidence({ eventId: 'e'.repeat(301) }) },
  ])('refuses a record with a hostile $case', ({ input, $case }) => {
    expect(() => buildLineageRecord(input)).toThrow(new RegExp($case.split(' ')[0]!.replace('.', '\\.')));
  });

  it('still builds the ordinary record', () => {
    expect(buildLineageRecord(recordInput(1)).generation).toBe(1);
  });
});
