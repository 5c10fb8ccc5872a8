import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KeyCrn } from '../../../src/core/index.js';
import {
  catchUpSchedule,
  earliestRotationAtMs,
  planMemberRotations,
  ROTATION_MIN_INTERVAL_MS,
  ROTATION_SAFETY_MARGIN_MS,
} from '../../../src/scheduling/index.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const NOW = Date.UTC(2026, 0, 10, 12, 0, 0);
const crn = (n: number) => `crn:v1:bluemix:public:kms:us-south:a/acct:i${n}:key:k${n}` as KeyCrn;

describe('earliestRotationAtMs', () => {
  it('encodes Key Protect’s one rotation per key per hour plus a one-minute margin', () => {
    expect(ROTATION_MIN_INTERVAL_MS).toBe(3_600_000);
    expect(ROTATION_SAFETY_MARGIN_MS).toBe(60_000);
  });

  it.each<{ case: string; args: [number | undefined, number?, number?]; expected: number }>([
    { case: 'never rotated', args: [undefined], expected: 0 },
    { case: 'rotated at NOW', args: [NOW], expected: NOW + HOUR + MIN },
    { case: 'a shortened dev rule', args: [NOW, 2 * MIN, 0], expected: NOW + 2 * MIN },
    { case: 'no margin', args: [NOW, HOUR, 0], expected: NOW + HOUR },
  ])('$case', ({ args, expected }) => {
    // Act / Assert
    expect(earliestRotationAtMs(...args)).toBe(expected);
  });

  it.each([
    [NOW, -1, 0, /minIntervalMs must be a non-negative integer/],
    [NOW, HOUR, -5, /safetyMarginMs must be a non-negative integer/],
    [NOW, 1.5, 0, /minIntervalMs/],
    [NOW, HOUR, Number.NaN, /safetyMarginMs/],
  ] as const)('rejects last=%s min=%s margin=%s', (last, min, margin, msg) => {
    // Act / Assert
    expect(() => earliestRotationAtMs(last, min, margin)).toThrow(msg);
  });
});

describe('planMemberRotations', () => {
  it.each<{
    case: string;
    members: { crn: KeyCrn; lastRotateAtMs?: number }[];
    opts?: { minIntervalMs?: number; safetyMarginMs?: number };
    all: number;
    blocked: boolean[];
  }>([
    { case: 'no members', members: [], all: NOW, blocked: [] },
    {
      case: 'never-rotated keys (adopted or new)',
      members: [{ crn: crn(1) }, { crn: crn(2) }],
      all: NOW,
      blocked: [false, false],
    },
    {
      case: 'all rotated long ago',
      members: [
        { crn: crn(1), lastRotateAtMs: NOW - 2 * HOUR },
        { crn: crn(2), lastRotateAtMs: NOW - HOUR - MIN },
      ],
      all: NOW,
      blocked: [false, false],
    },
    {
      case: 'one duplicate rotated 20 minutes ago (an out-of-band rotation)',
      members: [
        { crn: crn(1), lastRotateAtMs: NOW - 2 * HOUR },
        { crn: crn(2), lastRotateAtMs: NOW - 20 * MIN },
        { crn: crn(3) },
      ],
      all: NOW + 41 * MIN,
      blocked: [false, true, false],
    },
    {
      case: 'the latest of several blocked members wins',
      members: [
        { crn: crn(1), lastRotateAtMs: NOW - 30 * MIN },
        { crn: crn(2), lastRotateAtMs: NOW - 10 * MIN },
      ],
      all: NOW + 51 * MIN,
      blocked: [true, true],
    },
    {
      case: 'exactly at the boundary',
      members: [{ crn: crn(1), lastRotateAtMs: NOW - HOUR - MIN }],
      all: NOW,
      blocked: [false],
    },
    {
      case: 'a key Key Protect reports in the future (clock skew) stays blocked',
      members: [{ crn: crn(1), lastRotateAtMs: NOW + 5 * MIN }],
      all: NOW + 66 * MIN,
      blocked: [true],
    },
    {
      case: 'the dev emulator’s shortened rule',
      members: [{ crn: crn(1), lastRotateAtMs: NOW - MIN }],
      opts: { minIntervalMs: 2 * MIN, safetyMarginMs: 0 },
      all: NOW + MIN,
      blocked: [true],
    },
  ])('$case', ({ members, opts, all, blocked }) => {
    // Act
    const plan = planMemberRotations(members, NOW, opts);
    // Assert
    expect(plan.allMayRotateAtMs).toBe(all);
    expect(plan.blocked).toBe(blocked.some(Boolean));
    expect(plan.members.map((m) => m.blocked)).toEqual(blocked);
    expect(plan.members.map((m) => m.crn)).toEqual(members.map((m) => m.crn));
    for (const m of plan.members) expect(m.mayRotateAtMs).toBeGreaterThanOrEqual(NOW);
  });

  it('never lets a member rotate within the interval of its last rotation', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: NOW - 3 * HOUR, max: NOW + HOUR }), { nil: undefined }), { maxLength: 6 }),
        fc.integer({ min: 0, max: 2 * HOUR }),
        fc.integer({ min: 0, max: 5 * MIN }),
        (lasts, minIntervalMs, safetyMarginMs) => {
          // Arrange
          const members = lasts.map((l, i) => (l === undefined ? { crn: crn(i) } : { crn: crn(i), lastRotateAtMs: l }));
          // Act
          const plan = planMemberRotations(members, NOW, { minIntervalMs, safetyMarginMs });
          // Assert
          for (const [i, m] of members.entries()) {
            const at = plan.allMayRotateAtMs;
            if (m.lastRotateAtMs !== undefined) expect(at - m.lastRotateAtMs).toBeGreaterThanOrEqual(minIntervalMs);
            expect(plan.members[i]!.mayRotateAtMs).toBeLessThanOrEqual(at);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('catchUpSchedule', () => {
  it.each<{ case: string; args: Parameters<typeof catchUpSchedule>; expected: number[] }>([
    { case: 'nothing missing', args: [0, NOW - 5 * HOUR, NOW], expected: [] },
    {
      case: 'a lagging member free to rotate now',
      args: [3, NOW - 5 * HOUR, NOW],
      expected: [NOW, NOW + 61 * MIN, NOW + 122 * MIN],
    },
    {
      case: 'a member rotated 10 minutes ago',
      args: [2, NOW - 10 * MIN, NOW],
      expected: [NOW + 51 * MIN, NOW + 112 * MIN],
    },
    {
      case: 'a new region replaying history (a fresh key has no restriction)',
      args: [3, undefined, NOW],
      expected: [NOW, NOW + 61 * MIN, NOW + 122 * MIN],
    },
    {
      case: 'the dev emulator’s two-minute rule without margin',
      args: [3, NOW, NOW, 2 * MIN, 0],
      expected: [NOW + 2 * MIN, NOW + 4 * MIN, NOW + 6 * MIN],
    },
  ])('$case', ({ args, expected }) => {
    // Act / Assert
    expect(catchUpSchedule(...args)).toEqual(expected);
  });

  it('spaces every step by at least the interval', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.option(fc.integer({ min: NOW - 3 * HOUR, max: NOW }), { nil: undefined }),
        fc.integer({ min: 0, max: 2 * HOUR }),
        (n, last, minIntervalMs) => {
          // Act
          const times = catchUpSchedule(n, last, NOW, minIntervalMs);
          // Assert
          expect(times).toHaveLength(n);
          if (n > 0) expect(times[0]).toBeGreaterThanOrEqual(NOW);
          if (last !== undefined && n > 0) expect(times[0]! - last).toBeGreaterThanOrEqual(minIntervalMs);
          for (let i = 1; i < n; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(minIntervalMs);
        },
      ),
      { numRuns: 200 },
    );
  });

  it.each([-1, 1.5, 10_001, Number.NaN])('rejects %s missing generations', (n) => {
    // Act / Assert
    expect(() => catchUpSchedule(n, undefined, NOW)).toThrow(/missingGenerations must be an integer from 0 to 10000/);
  });
});
