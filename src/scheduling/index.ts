/**
 * Scheduling: when a group is due (cron or interval, optional daily window, max-age guard) and when its members may
 * rotate under Key Protect's one-rotation-per-key-per-hour rule. Pure: time comes in as `nowMs` arguments; cron
 * expressions are evaluated with croner against explicit reference times.
 */
export { type DailyWindow, DEFAULT_TIME_ZONE } from './calendar.js';
export {
  type DueDecision,
  DueReason,
  dueDecision,
  isWithinWindow,
  nextDueAtMs,
  type ScheduleState,
} from './due.js';
export {
  catchUpSchedule,
  earliestRotationAtMs,
  type GroupRotationPlan,
  type MemberRotationPlan,
  planMemberRotations,
  ROTATION_MIN_INTERVAL_MS,
  ROTATION_SAFETY_MARGIN_MS,
  type RotationRuleOptions,
} from './rotationRule.js';
export {
  type DueGroup,
  type DueSelection,
  type SchedulableGroup,
  type SelectDueGroupsOptions,
  selectDueGroups,
} from './selectDueGroups.js';
export { type ValidateScheduleOptions, validateSchedule } from './validateSchedule.js';
