import { AppError, type KeyCrn } from '../core/index.js';

/**
 * Key Protect allows one `rotate` per key per hour (409 `KEY_ROTATION_NOT_PERMITTED` otherwise); the first rotation
 * of a key has no restriction. See https://cloud.ibm.com/docs/key-protect?topic=key-protect-key-rotation
 */
export const ROTATION_MIN_INTERVAL_MS = 3_600_000;

/** Margin added to the 1 h rule for clock skew between lockstep and Key Protect. */
export const ROTATION_SAFETY_MARGIN_MS = 60_000;

const MAX_CATCH_UP = 10_000;

/** Options for the 1-rotation-per-hour planning helpers. */
export interface RotationRuleOptions {
  /** Minimum time between two rotations of one key (default {@link ROTATION_MIN_INTERVAL_MS}; the dev emulator may shorten it). */
  minIntervalMs?: number;
  /** Extra wait for clock skew (default {@link ROTATION_SAFETY_MARGIN_MS}). */
  safetyMarginMs?: number;
}

function checkDuration(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new AppError('VALIDATION_FAILED', `${name} must be a non-negative integer of milliseconds, got ${v}`, {
      details: { field: name },
    });
  }
}

/**
 * The earliest time a key may be rotated again: its last rotation (Key Protect's `lastRotateDate`) plus the minimum
 * interval plus a safety margin. A key never rotated may rotate at any time: returns 0.
 * See https://cloud.ibm.com/docs/key-protect?topic=key-protect-key-rotation
 * @throws {AppError} VALIDATION_FAILED when an interval or margin is negative or not an integer.
 */
export function earliestRotationAtMs(
  lastRotateAtMs?: number,
  minIntervalMs: number = ROTATION_MIN_INTERVAL_MS,
  safetyMarginMs: number = ROTATION_SAFETY_MARGIN_MS,
): number {
  checkDuration('minIntervalMs', minIntervalMs);
  checkDuration('safetyMarginMs', safetyMarginMs);
  return lastRotateAtMs === undefined ? 0 : lastRotateAtMs + minIntervalMs + safetyMarginMs;
}

/** When one member may be rotated. */
export interface MemberRotationPlan {
  crn: KeyCrn;
  /** `nowMs` if it may rotate now, else the earliest allowed time. */
  mayRotateAtMs: number;
  /** True when the 1 h rule forbids rotating it at `nowMs`. */
  blocked: boolean;
}

/** When a whole group may be rotated. */
export interface GroupRotationPlan {
  /** The earliest time at which every member may rotate (`nowMs` when none is blocked). */
  allMayRotateAtMs: number;
  /** True when at least one member is blocked now: the run should be rescheduled to `allMayRotateAtMs`. */
  blocked: boolean;
  members: MemberRotationPlan[];
}

/**
 * Plans a group rotation around Key Protect's 1-rotation-per-hour rule. A run must not start staging until every
 * member may rotate, or the primary could end up waiting on a duplicate that Key Protect refuses.
 *
 * @param members - each member's CRN and last rotation time (`lastRotateDate`; undefined if never rotated).
 * @param nowMs - the caller's clock.
 * @throws {AppError} VALIDATION_FAILED when an option is negative or not an integer.
 */
export function planMemberRotations(
  members: readonly { crn: KeyCrn; lastRotateAtMs?: number }[],
  nowMs: number,
  options: RotationRuleOptions = {},
): GroupRotationPlan {
  const plans = members.map((m): MemberRotationPlan => {
    const earliest = earliestRotationAtMs(m.lastRotateAtMs, options.minIntervalMs, options.safetyMarginMs);
    return { crn: m.crn, mayRotateAtMs: Math.max(nowMs, earliest), blocked: earliest > nowMs };
  });
  const allMayRotateAtMs = plans.reduce((t, p) => Math.max(t, p.mayRotateAtMs), nowMs);
  return { allMayRotateAtMs, blocked: plans.some((p) => p.blocked), members: plans };
}

/**
 * When a lagging member (or a new region replaying history) can receive each missing generation: one rotation per
 * allowed interval, the first as soon as the member's last rotation allows. These are earliest times; recompute
 * after each rotation from the member's actual `lastRotateDate`. For a brand-new key pass `undefined` (its first
 * rotation has no restriction).
 *
 * @param missingGenerations - how many rotations the member needs.
 * @returns `missingGenerations` ascending times, spaced by `minIntervalMs + safetyMarginMs`.
 * @throws {AppError} VALIDATION_FAILED when `missingGenerations` is not an integer in 0..10000 or an interval is invalid.
 */
export function catchUpSchedule(
  missingGenerations: number,
  memberLastRotateAtMs: number | undefined,
  nowMs: number,
  minIntervalMs: number = ROTATION_MIN_INTERVAL_MS,
  safetyMarginMs: number = ROTATION_SAFETY_MARGIN_MS,
): number[] {
  if (!Number.isSafeInteger(missingGenerations) || missingGenerations < 0 || missingGenerations > MAX_CATCH_UP) {
    throw new AppError(
      'VALIDATION_FAILED',
      `missingGenerations must be an integer from 0 to ${MAX_CATCH_UP}, got ${missingGenerations}`,
      { details: { field: 'missingGenerations' } },
    );
  }
  const first = Math.max(nowMs, earliestRotationAtMs(memberLastRotateAtMs, minIntervalMs, safetyMarginMs));
  return Array.from({ length: missingGenerations }, (_, i) => first + i * (minIntervalMs + safetyMarginMs));
}
