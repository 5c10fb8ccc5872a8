import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Schedule } from '../../../src/core/index.js';
import { dueDecision, isWithinWindow, nextDueAtMs } from '../../../src/scheduling/index.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());
const CREATED = at('2025-06-01T00:00:00Z');

describe('nextDueAtMs — cron in a non-UTC time zone across DST (Europe/Berlin)', () => {
  it.each([
    {
      case: '02:30 daily, spring-forward day: 02:30 does not exist, fires at 03:00 CEST',
      cron: '30 2 * * *',
      last: '2026-03-28T01:30:00Z',
      expected: '2026-03-29T01:00:00.000Z',
    },
    {
      case: '02:30 daily, the day after spring-forward (CEST)',
      cron: '30 2 * * *',
      last: '2026-03-29T01:00:00Z',
      expected: '2026-03-30T00:30:00.000Z',
    },
    {
      case: '03:00 daily across spring-forward: 23 h later',
      cron: '0 3 * * *',
      last: '2026-03-28T02:00:00Z',
      expected: '2026-03-29T01:00:00.000Z',
    },
    {
      case: '02:30 daily, fall-back day: fires once, at the first (CEST) occurrence',
      cron: '30 2 * * *',
      last: '2026-10-24T00:30:00Z',
      expected: '2026-10-25T00:30:00.000Z',
    },
    {
      case: '02:30 daily after the fall-back occurrence: not again at 02:30 CET, next day',
      cron: '30 2 * * *',
      last: '2026-10-25T00:30:00Z',
      expected: '2026-10-26T01:30:00.000Z',
    },
    {
      case: '03:00 daily across fall-back: 25 h later',
      cron: '0 3 * * *',
      last: '2026-10-24T01:00:00Z',
      expected: '2026-10-25T02:00:00.000Z',
    },
    {
      case: 'weekly Sunday 04:00 local, on the fall-back Sunday',
      cron: '0 4 * * SUN',
      last: '2026-10-18T02:00:00Z',
      expected: '2026-10-25T03:00:00.000Z',
    },
  ])('$case', ({ cron, last, expected }) => {
    // Arrange
    const schedule: Schedule = { cron, timeZone: 'Europe/Berlin' };
    // Act
    const due = nextDueAtMs(schedule, { lastRotatedAtMs: at(last), createdAtMs: CREATED, nowMs: at(last) + 1000 });
    // Assert
    expect(iso(due)).toBe(expected);
  });

  it('uses the creation time before the first rotation', () => {
    // Act
    const due = nextDueAtMs(
      { cron: '0 3 * * *' },
      { createdAtMs: at('2026-01-05T10:00:00Z'), nowMs: at('2026-01-05T10:00:00Z') },
    );
    // Assert
    expect(iso(due)).toBe('2026-01-06T03:00:00.000Z');
  });

  it('is strictly after the last rotation even when it happened exactly at a fire time', () => {
    // Act
    const due = nextDueAtMs(
      { cron: '0 3 * * *' },
      { lastRotatedAtMs: at('2026-01-05T03:00:00Z'), createdAtMs: CREATED, nowMs: 0 },
    );
    // Assert
    expect(iso(due)).toBe('2026-01-06T03:00:00.000Z');
  });
});

describe('nextDueAtMs — intervals and windows', () => {
  const last = at('2026-01-10T10:00:00Z');
  it.each<{ case: string; schedule: Schedule; last?: number; expected: string }>([
    { case: 'a plain interval', schedule: { intervalMs: DAY }, expected: '2026-01-11T10:00:00.000Z' },
    {
      case: 'an interval moved into a UTC window',
      schedule: { intervalMs: DAY, window: { start: '01:00', end: '05:00' } },
      expected: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'an interval already inside the window',
      schedule: { intervalMs: DAY, window: { start: '09:00', end: '12:00' } },
      expected: '2026-01-11T10:00:00.000Z',
    },
    {
      case: 'an interval at the exclusive window end',
      schedule: { intervalMs: DAY, window: { start: '06:00', end: '10:00' } },
      expected: '2026-01-12T06:00:00.000Z',
    },
    {
      case: 'a window crossing midnight, due before its start',
      schedule: { intervalMs: DAY, window: { start: '22:00', end: '02:00' } },
      expected: '2026-01-11T22:00:00.000Z',
    },
    {
      case: 'a window crossing midnight, due after midnight inside it',
      schedule: { intervalMs: 15 * HOUR + 30 * 60_000, window: { start: '22:00', end: '02:00' } },
      expected: '2026-01-11T01:30:00.000Z',
    },
    {
      case: 'a window crossing midnight, due before midnight inside it',
      schedule: { intervalMs: 13 * HOUR, window: { start: '22:00', end: '02:00' } },
      expected: '2026-01-10T23:00:00.000Z',
    },
    {
      case: 'a window crossing midnight, due at its end',
      schedule: { intervalMs: 16 * HOUR, window: { start: '22:00', end: '02:00' } },
      expected: '2026-01-11T22:00:00.000Z',
    },
    {
      case: 'a Berlin window (CET)',
      schedule: { intervalMs: DAY, timeZone: 'Europe/Berlin', window: { start: '01:00', end: '05:00' } },
      expected: '2026-01-12T00:00:00.000Z',
    },
    {
      case: 'a half-hour offset zone (St Johns, UTC-3:30)',
      schedule: { intervalMs: DAY, timeZone: 'America/St_Johns', window: { start: '01:00', end: '02:00' } },
      expected: '2026-01-12T04:30:00.000Z',
    },
    {
      case: 'a Berlin window whose start falls in the spring-forward gap: opens at 03:00 CEST',
      schedule: { intervalMs: DAY, timeZone: 'Europe/Berlin', window: { start: '02:30', end: '04:00' } },
      last: at('2026-03-27T23:00:00Z'),
      expected: '2026-03-29T01:00:00.000Z',
    },
    {
      case: 'a Berlin window swallowed by the spring-forward gap: the next day',
      schedule: { intervalMs: DAY, timeZone: 'Europe/Berlin', window: { start: '02:10', end: '02:50' } },
      last: at('2026-03-27T23:00:00Z'),
      expected: '2026-03-30T00:10:00.000Z',
    },
    {
      case: 'a Berlin window in the repeated fall-back hour opens at its first occurrence (CEST)',
      schedule: { intervalMs: DAY, timeZone: 'Europe/Berlin', window: { start: '02:15', end: '02:45' } },
      last: at('2026-10-23T22:00:00Z'),
      expected: '2026-10-25T00:15:00.000Z',
    },
    {
      case: 'a due time in the second occurrence of the repeated hour (CET) is inside the window',
      schedule: { intervalMs: DAY, timeZone: 'Europe/Berlin', window: { start: '02:15', end: '02:45' } },
      last: at('2026-10-24T01:20:00Z'),
      expected: '2026-10-25T01:20:00.000Z',
    },
    {
      case: 'a cron fire moved into a window',
      schedule: { cron: '0 12 * * *', window: { start: '01:00', end: '05:00' } },
      expected: '2026-01-11T01:00:00.000Z',
    },
    {
      case: 'max-age wins over the window',
      schedule: { intervalMs: DAY, maxAgeMs: 30 * HOUR, window: { start: '01:00', end: '05:00' } },
      expected: '2026-01-11T16:00:00.000Z',
    },
    {
      case: 'max-age later than the windowed due time',
      schedule: { intervalMs: DAY, maxAgeMs: 48 * HOUR, window: { start: '01:00', end: '05:00' } },
      expected: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'a cron that never fires, with a guard',
      schedule: { cron: '0 0 30 2 *', maxAgeMs: 90 * DAY },
      expected: '2026-04-10T10:00:00.000Z',
    },
  ])('$case', ({ schedule, last: lastMs, expected }) => {
    // Arrange
    const l = lastMs ?? last;
    // Act
    const due = nextDueAtMs(schedule, { lastRotatedAtMs: l, createdAtMs: CREATED, nowMs: l });
    // Assert
    expect(iso(due)).toBe(expected);
  });

  it.each<{ case: string; schedule: Schedule }>([
    {
      case: 'a disabled schedule, even with a passed guard',
      schedule: { intervalMs: DAY, maxAgeMs: DAY, enabled: false },
    },
    { case: 'a cron that never fires, without a guard', schedule: { cron: '0 0 30 2 *' } },
    { case: 'no rule at all', schedule: {} },
  ])('is undefined for $case', ({ schedule }) => {
    // Act / Assert
    expect(
      nextDueAtMs(schedule, { lastRotatedAtMs: last, createdAtMs: CREATED, nowMs: last + 100 * DAY }),
    ).toBeUndefined();
  });

  it('raises VALIDATION_FAILED for a malformed window', () => {
    // Act / Assert
    expect(() =>
      nextDueAtMs({ intervalMs: DAY, window: { start: '1am', end: '02:00' } }, { createdAtMs: 0, nowMs: 0 }),
    ).toThrow(/window must be/);
  });

  it('keeps working when many distinct cron patterns are evaluated (bounded cache)', () => {
    // Arrange: more distinct patterns than the cache holds
    const patterns = Array.from({ length: 300 }, (_, i) => `${i % 60} ${Math.floor(i / 60)} * * *`);
    // Act
    const dues = patterns.map((cron) => nextDueAtMs({ cron }, { createdAtMs: Date.UTC(2026, 0, 1), nowMs: 0 }));
    // Assert
    expect(dues[0]).toBe(Date.UTC(2026, 0, 2, 0, 0));
    expect(dues[1]).toBe(Date.UTC(2026, 0, 1, 0, 1));
    expect(dues[299]).toBe(Date.UTC(2026, 0, 1, 4, 59));
  });

  it('raises VALIDATION_FAILED for a malformed cron or time zone', () => {
    // Act / Assert
    expect(() => nextDueAtMs({ cron: 'nope' }, { createdAtMs: 0, nowMs: 0 })).toThrow(/Invalid cron "nope"/);
    expect(() => nextDueAtMs({ cron: '0 3 * * *', timeZone: 'Bad/Zone' }, { createdAtMs: 0, nowMs: 0 })).toThrow(
      /Unknown time zone "Bad\/Zone"/,
    );
    expect(() =>
      nextDueAtMs(
        { intervalMs: DAY, timeZone: 'Bad/Zone2', window: { start: '01:00', end: '02:00' } },
        { createdAtMs: 0, nowMs: 0 },
      ),
    ).toThrow(/Unknown time zone/);
  });
});

describe('dueDecision', () => {
  const last = at('2026-01-10T10:00:00Z');
  const state = { lastRotatedAtMs: last, createdAtMs: CREATED };
  const windowed: Schedule = { intervalMs: DAY, window: { start: '01:00', end: '05:00' } };

  it.each<{
    case: string;
    schedule: Schedule;
    now: string;
    due: boolean;
    reason: string;
    next?: string;
    dueAt?: string;
  }>([
    {
      case: 'before the interval',
      schedule: { intervalMs: DAY },
      now: '2026-01-11T09:59:59Z',
      due: false,
      reason: 'not-yet',
      next: '2026-01-11T10:00:00.000Z',
      dueAt: '2026-01-11T10:00:00.000Z',
    },
    {
      case: 'at the interval',
      schedule: { intervalMs: DAY },
      now: '2026-01-11T10:00:00Z',
      due: true,
      reason: 'interval',
      next: '2026-01-11T10:00:00.000Z',
      dueAt: '2026-01-11T10:00:00.000Z',
    },
    {
      case: 'long overdue',
      schedule: { intervalMs: DAY },
      now: '2026-02-01T00:00:00Z',
      due: true,
      reason: 'interval',
      dueAt: '2026-01-11T10:00:00.000Z',
    },
    {
      case: 'at a cron fire',
      schedule: { cron: '0 3 * * *' },
      now: '2026-01-11T03:00:00Z',
      due: true,
      reason: 'cron',
      dueAt: '2026-01-11T03:00:00.000Z',
    },
    {
      case: 'due but the window is closed',
      schedule: windowed,
      now: '2026-01-11T12:00:00Z',
      due: false,
      reason: 'outside-window',
      next: '2026-01-12T01:00:00.000Z',
      dueAt: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'due and the window opens',
      schedule: windowed,
      now: '2026-01-12T01:00:00Z',
      due: true,
      reason: 'interval',
      dueAt: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'overdue since the window opened',
      schedule: windowed,
      now: '2026-01-12T04:59:00Z',
      due: true,
      reason: 'interval',
      dueAt: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'the window was missed (scheduler down)',
      schedule: windowed,
      now: '2026-01-12T12:00:00Z',
      due: false,
      reason: 'outside-window',
      next: '2026-01-13T01:00:00.000Z',
    },
    {
      case: 'outside the window with the guard sooner than the opening',
      schedule: { ...windowed, maxAgeMs: 34 * HOUR },
      now: '2026-01-11T12:00:00Z',
      due: false,
      reason: 'outside-window',
      next: '2026-01-11T20:00:00.000Z',
    },
    {
      case: 'the guard forces it outside the window',
      schedule: { ...windowed, maxAgeMs: 34 * HOUR },
      now: '2026-01-11T20:00:00Z',
      due: true,
      reason: 'max-age',
      dueAt: '2026-01-11T20:00:00.000Z',
    },
    {
      case: 'the guard, before the schedule is due',
      schedule: { intervalMs: 3 * DAY, maxAgeMs: 3 * DAY, window: { start: '01:00', end: '02:00' } },
      now: '2026-01-13T10:00:00Z',
      due: true,
      reason: 'max-age',
      dueAt: '2026-01-13T10:00:00.000Z',
    },
    {
      case: 'the guard passed, the windowed time earlier still',
      schedule: { ...windowed, maxAgeMs: 60 * HOUR },
      now: '2026-01-12T23:00:00Z',
      due: true,
      reason: 'max-age',
      dueAt: '2026-01-12T01:00:00.000Z',
    },
    {
      case: 'disabled',
      schedule: { ...windowed, enabled: false },
      now: '2026-03-01T00:00:00Z',
      due: false,
      reason: 'disabled',
    },
    {
      case: 'a cron that never fires',
      schedule: { cron: '0 0 30 2 *' },
      now: '2026-03-01T00:00:00Z',
      due: false,
      reason: 'not-yet',
    },
  ])('$case', ({ schedule, now, due, reason, next, dueAt }) => {
    // Arrange
    const nowMs = at(now);
    // Act
    const d = dueDecision(schedule, state, nowMs);
    // Assert
    expect(d.due).toBe(due);
    expect(d.reason).toBe(reason);
    if (due) expect(d.nextCheckAtMs).toBe(nowMs);
    if (next) expect(iso(d.nextCheckAtMs)).toBe(next);
    if (dueAt) expect(iso(d.dueAtMs)).toBe(dueAt);
    if (reason === 'disabled' || schedule.cron === '0 0 30 2 *') expect(d.nextCheckAtMs).toBeUndefined();
    expect(nextDueAtMs(schedule, { ...state, nowMs })).toBe(d.dueAtMs);
  });
});

describe('isWithinWindow', () => {
  it.each([
    [{ intervalMs: DAY }, '2026-01-01T12:00:00Z', true],
    [{ intervalMs: DAY, window: { start: '22:00', end: '02:00' } }, '2026-01-01T23:59:59Z', true],
    [{ intervalMs: DAY, window: { start: '22:00', end: '02:00' } }, '2026-01-01T00:00:00Z', true],
    [{ intervalMs: DAY, window: { start: '22:00', end: '02:00' } }, '2026-01-01T02:00:00Z', false],
    [
      { intervalMs: DAY, timeZone: 'Asia/Kathmandu', window: { start: '06:00', end: '07:00' } },
      '2026-01-01T00:15:00Z',
      true,
    ],
    [
      { intervalMs: DAY, timeZone: 'Asia/Kathmandu', window: { start: '06:00', end: '07:00' } },
      '2026-01-01T00:14:59Z',
      false,
    ],
  ] as [Schedule, string, boolean][])('%j at %s → %s', (schedule, when, expected) => {
    // Act / Assert
    expect(isWithinWindow(schedule, at(when))).toBe(expected);
  });
});

describe('nextDueAtMs — properties', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/St_Johns', 'Asia/Kathmandu', 'Australia/Lord_Howe'];
  const hhmm = fc
    .tuple(fc.integer({ min: 0, max: 23 }), fc.constantFrom(0, 15, 30, 45))
    .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
  const scheduleArb = fc
    .record({
      intervalMs: fc.integer({ min: HOUR, max: 40 * DAY }),
      timeZone: fc.constantFrom(...zones),
      window: fc.option(
        fc.record({ start: hhmm, end: hhmm }).filter((w) => w.start !== w.end),
        { nil: undefined },
      ),
      extraAgeMs: fc.option(fc.integer({ min: 0, max: 10 * DAY }), { nil: undefined }),
    })
    .map(({ intervalMs, timeZone, window, extraAgeMs }): Schedule => {
      const s: Schedule = { intervalMs, timeZone };
      if (window) s.window = window;
      if (extraAgeMs !== undefined) s.maxAgeMs = intervalMs + extraAgeMs;
      return s;
    });
  const lastArb = fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2028-01-01T00:00:00Z') });

  it('is never before last + interval and always inside the window, unless the max-age guard applies', () => {
    fc.assert(
      fc.property(scheduleArb, lastArb, fc.integer({ min: 0, max: 60 * DAY }), (schedule, last, sinceMs) => {
        // Arrange
        const nowMs = last + sinceMs;
        const guard = schedule.maxAgeMs === undefined ? undefined : last + schedule.maxAgeMs;
        // Act
        const due = nextDueAtMs(schedule, { lastRotatedAtMs: last, createdAtMs: CREATED, nowMs }) as number;
        // Assert
        expect(due).toBeTypeOf('number');
        if (due !== guard) {
          expect(due).toBeGreaterThanOrEqual(last + (schedule.intervalMs as number));
          expect(isWithinWindow(schedule, due)).toBe(true);
        }
        if (guard !== undefined) expect(due).toBeLessThanOrEqual(Math.max(guard, nowMs + 1));
      }),
      { numRuns: 300 },
    );
  });

  it('for crons: never before the next fire after the last rotation, inside the window unless the guard applies', () => {
    const cronArb = fc.constantFrom('0 3 * * *', '30 2 * * *', '0 */6 * * *', '15 4 * * MON', '0 0 1 * *', '0 * * * *');
    fc.assert(
      fc.property(
        cronArb,
        fc.constantFrom(...zones),
        fc.option(
          fc.record({ start: hhmm, end: hhmm }).filter((w) => w.start !== w.end),
          { nil: undefined },
        ),
        fc.option(fc.integer({ min: HOUR, max: 40 * DAY }), { nil: undefined }),
        lastArb,
        fc.integer({ min: 0, max: 40 * DAY }),
        (cron, timeZone, window, maxAgeMs, last, sinceMs) => {
          // Arrange
          const schedule: Schedule = { cron, timeZone };
          if (window) schedule.window = window;
          if (maxAgeMs !== undefined) schedule.maxAgeMs = maxAgeMs;
          const guard = maxAgeMs === undefined ? undefined : last + maxAgeMs;
          const firstFire = nextDueAtMs(
            { cron, timeZone },
            { lastRotatedAtMs: last, createdAtMs: CREATED, nowMs: last },
          ) as number;
          // Act
          const due = nextDueAtMs(schedule, {
            lastRotatedAtMs: last,
            createdAtMs: CREATED,
            nowMs: last + sinceMs,
          }) as number;
          // Assert
          expect(firstFire).toBeGreaterThan(last);
          if (due !== guard) {
            expect(due).toBeGreaterThanOrEqual(firstFire);
            expect(isWithinWindow(schedule, due)).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is at or before now exactly when dueDecision says due', () => {
    fc.assert(
      fc.property(scheduleArb, lastArb, fc.integer({ min: 0, max: 60 * DAY }), (schedule, last, sinceMs) => {
        // Arrange
        const nowMs = last + sinceMs;
        const state = { lastRotatedAtMs: last, createdAtMs: CREATED };
        // Act
        const decision = dueDecision(schedule, state, nowMs);
        const due = nextDueAtMs(schedule, { ...state, nowMs }) as number;
        // Assert
        expect(due <= nowMs).toBe(decision.due);
        if (!decision.due) {
          expect(decision.nextCheckAtMs).toBe(due);
          // Nothing is due strictly between now and the announced time.
          const probe = nowMs + Math.floor((due - nowMs) / 2);
          if (probe > nowMs) expect(dueDecision(schedule, state, probe).due).toBe(false);
          expect(dueDecision(schedule, state, due).due).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
