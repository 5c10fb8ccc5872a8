import { describe, expect, it } from 'vitest';
import type { Group, Schedule } from '../../../src/core/index.js';
import { type SchedulableGroup, selectDueGroups } from '../../../src/scheduling/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 0, 10, 12, 0, 0);

const group = (id: string, lastAgoMs: number, extra: Partial<SchedulableGroup> = {}): SchedulableGroup => ({
  id,
  schedule: { intervalMs: DAY } as Schedule,
  createdAtMs: NOW - 100 * DAY,
  lastRotatedAtMs: NOW - lastAgoMs,
  members: [1, 2, 3],
  ...extra,
});

describe('selectDueGroups', () => {
  const fleet = [
    group('a', 25 * HOUR), // due 1 h ago
    group('b', 3 * DAY), // due 2 days ago (oldest)
    group('c', 2 * HOUR), // due in 22 h
    group('d', 30 * HOUR), // due 6 h ago
    group('e', 30 * HOUR), // due 6 h ago, tie with d
    group('f', 5 * DAY, { activeRunId: 'run-12345678' }), // busy: resumed elsewhere
    group('g', 5 * DAY, { schedule: { intervalMs: DAY, enabled: false } }), // paused
  ];

  it.each<{ case: string; opts?: Parameters<typeof selectDueGroups>[2]; selected: string[]; deferred: string[] }>([
    {
      case: 'no bounds: every due group, oldest overdue first, ties in input order',
      selected: ['b', 'd', 'e', 'a'],
      deferred: [],
    },
    { case: 'a limit', opts: { limit: 2 }, selected: ['b', 'd'], deferred: ['e', 'a'] },
    { case: 'limit 0', opts: { limit: 0 }, selected: [], deferred: ['b', 'd', 'e', 'a'] },
    {
      case: 'a budget of 7 member-rotations (3 per group)',
      opts: { budget: 7 },
      selected: ['b', 'd'],
      deferred: ['e', 'a'],
    },
    {
      case: 'a budget below one group still starts the oldest',
      opts: { budget: 2 },
      selected: ['b'],
      deferred: ['d', 'e', 'a'],
    },
    { case: 'budget 0', opts: { budget: 0 }, selected: [], deferred: ['b', 'd', 'e', 'a'] },
    { case: 'a custom cost', opts: { budget: 3, costOf: () => 1 }, selected: ['b', 'd', 'e'], deferred: ['a'] },
    { case: 'limit and budget together', opts: { limit: 1, budget: 100 }, selected: ['b'], deferred: ['d', 'e', 'a'] },
  ])('$case', ({ opts, selected, deferred }) => {
    // Act
    const out = selectDueGroups(fleet, NOW, opts);
    // Assert
    expect(out.selected.map((s) => s.group.id)).toEqual(selected);
    expect(out.deferred.map((s) => s.group.id)).toEqual(deferred);
    expect(out.nextCheckAtMs).toBe(NOW + 22 * HOUR);
    for (const s of out.selected) expect(s.decision).toMatchObject({ due: true, reason: 'interval' });
  });

  it('stops at a group that does not fit rather than skipping ahead', () => {
    // Arrange: the oldest group is big
    const groups = [
      group('small1', 3 * DAY, { members: [1] }),
      group('big', 2 * DAY, { members: [1, 2, 3, 4, 5] }),
      group('small2', 25 * HOUR, { members: [1] }),
    ];
    // Act
    const out = selectDueGroups(groups, NOW, { budget: 3 });
    // Assert
    expect(out.selected.map((s) => s.group.id)).toEqual(['small1']);
    expect(out.deferred.map((s) => s.group.id)).toEqual(['big', 'small2']);
  });

  it('counts a group without members as cost 1 and omits nextCheckAtMs when nothing is pending', () => {
    // Arrange
    const groups = [group('x', 3 * DAY, { members: undefined }), group('y', 2 * DAY, { members: undefined })];
    // Act
    const out = selectDueGroups(groups, NOW, { budget: 1 });
    // Assert
    expect(out.selected.map((s) => s.group.id)).toEqual(['x']);
    expect(out.nextCheckAtMs).toBeUndefined();
  });

  it('handles an empty fleet and accepts domain Groups', () => {
    const groups: Group[] = [];
    expect(selectDueGroups(groups, NOW)).toEqual({ selected: [], deferred: [] });
  });

  it.each([
    [{ limit: -1 }, /limit must be a non-negative number/],
    [{ budget: Number.NaN }, /budget must be a non-negative number/],
  ] as const)('rejects %j', (opts, msg) => {
    expect(() => selectDueGroups([], NOW, opts)).toThrow(msg);
  });
});
