import type { Schedule } from '../core/index.js';
import { cronNextMs, DEFAULT_TIME_ZONE, inWindow, moveIntoWindow } from './calendar.js';

/** What the due rules need to know about a group. */
export interface ScheduleState {
  /** When the current generation was completed; undefined before the first rotation. */
  lastRotatedAtMs?: number;
  /** When the group was created (the base before the first rotation). */
  createdAtMs: number;
}

/** Why a group is (not) due. */
export const DueReason = {
  CRON: 'cron',
  INTERVAL: 'interval',
  MAX_AGE: 'max-age',
  NOT_YET: 'not-yet',
  OUTSIDE_WINDOW: 'outside-window',
  DISABLED: 'disabled',
} as const;
export type DueReason = (typeof DueReason)[keyof typeof DueReason];

/** The scheduler's verdict for one group at one instant. */
export interface DueDecision {
  due: boolean;
  reason: DueReason;
  /**
   * When to look at the group again: `nowMs` when due, else the next instant it becomes due (store it as
   * `Group.nextDueAtMs`). Undefined when it never becomes due (disabled, or a schedule that never fires).
   */
  nextCheckAtMs?: number;
  /** Same as {@link nextDueAtMs}: when due, the instant since which it has been due (for oldest-first ordering). */
  dueAtMs?: number;
}

function evaluate(schedule: Schedule, state: ScheduleState, nowMs: number): DueDecision {
  if (schedule.enabled === false) return { due: false, reason: 'disabled' };
  const tz = schedule.timeZone ?? DEFAULT_TIME_ZONE;
  const base = state.lastRotatedAtMs ?? state.createdAtMs;
  const byCron = schedule.cron !== undefined;
  const rawDue = byCron
    ? cronNextMs(schedule.cron as string, tz, base)
    : schedule.intervalMs === undefined
      ? undefined
      : base + schedule.intervalMs;
  const guard = schedule.maxAgeMs === undefined ? undefined : base + schedule.maxAgeMs;
  const win = schedule.window;
  const windowed = rawDue === undefined || win === undefined ? rawDue : moveIntoWindow(rawDue, win, tz);
  const nowInWindow = win === undefined || inWindow(nowMs, win, tz);
  const earliest = (...ts: (number | undefined)[]): number | undefined => {
    const defined = ts.filter((t): t is number => t !== undefined);
    return defined.length === 0 ? undefined : Math.min(...defined);
  };

  if (rawDue !== undefined && rawDue <= nowMs && nowInWindow) {
    const dueAtMs = earliest(windowed, guard) as number;
    return { due: true, reason: byCron ? 'cron' : 'interval', nextCheckAtMs: nowMs, dueAtMs };
  }
  if (guard !== undefined && guard <= nowMs) {
    const dueAtMs = earliest(windowed, guard) as number;
    return { due: true, reason: 'max-age', nextCheckAtMs: nowMs, dueAtMs };
  }
  if (rawDue !== undefined && rawDue <= nowMs) {
    // Due by the schedule but outside the window: the next window opening (or the guard, if sooner).
    const next = earliest(moveIntoWindow(nowMs, win as NonNullable<typeof win>, tz), guard) as number;
    return { due: false, reason: 'outside-window', nextCheckAtMs: next, dueAtMs: next };
  }
  const next = earliest(windowed, guard);
  const decision: DueDecision = { due: false, reason: 'not-yet' };
  if (next !== undefined) {
    decision.nextCheckAtMs = next;
    decision.dueAtMs = next;
  }
  return decision;
}

/**
 * The next time the group should rotate by its schedule, relative to `nowMs`:
 * - cron: the first fire after the last rotation (or creation); interval: last rotation (or creation) + interval;
 *   either moved to the next opening of the daily `window`, if one is set (local time in `timeZone`);
 * - `maxAgeMs` guard: due no later than last rotation (or creation) + maxAge, **ignoring the window**;
 * - the result is ≤ `nowMs` exactly when the group is due now; it is then the instant since which it has been due
 *   (oldest-overdue-first ordering). A due time missed while outside the window moves to the next opening after
 *   `nowMs`.
 * - `undefined` when the schedule is disabled (`enabled: false` pauses cron, interval **and** the max-age guard:
 *   a pause is an explicit operator decision; operators can still rotate on demand), or when it never fires.
 *
 * Expects a schedule accepted by `validateSchedule`. Does not know the 1-rotation-per-hour rule of the members:
 * plan the run with `planMemberRotations`.
 *
 * @throws {AppError} VALIDATION_FAILED when the cron or time zone is malformed.
 */
export function nextDueAtMs(schedule: Schedule, state: ScheduleState & { nowMs: number }): number | undefined {
  return evaluate(schedule, state, state.nowMs).dueAtMs;
}

/**
 * Whether a group is due at `nowMs`, why, and when to check again. Reasons: `cron`/`interval` (due by the schedule,
 * inside the window if any), `max-age` (the guard forces it, window or not), `outside-window` (due but the window is
 * closed: `nextCheckAtMs` is its next opening), `not-yet`, `disabled`. See {@link nextDueAtMs} for the rules.
 *
 * @throws {AppError} VALIDATION_FAILED when the cron or time zone is malformed.
 */
export function dueDecision(schedule: Schedule, state: ScheduleState, nowMs: number): DueDecision {
  return evaluate(schedule, state, nowMs);
}

/** True when `atMs` lies inside the schedule's daily window (always true without a window). */
export function isWithinWindow(schedule: Schedule, atMs: number): boolean {
  return schedule.window === undefined || inWindow(atMs, schedule.window, schedule.timeZone ?? DEFAULT_TIME_ZONE);
}
