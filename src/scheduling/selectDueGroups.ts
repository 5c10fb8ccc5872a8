import { AppError, type Schedule } from '../core/index.js';
import { type DueDecision, dueDecision } from './due.js';

/** The parts of a group that selection needs (a `Group` fits). */
export interface SchedulableGroup {
  id: string;
  schedule: Schedule;
  createdAtMs: number;
  lastRotatedAtMs?: number;
  /** A run already working on the group: it is resumed by the scheduler, not started again. */
  activeRunId?: string;
  members?: readonly unknown[];
}

/** A due group and the decision that made it due. */
export interface DueGroup<G> {
  group: G;
  decision: DueDecision;
}

/** Bounds for one scheduler tick. */
export interface SelectDueGroupsOptions<G> {
  /** At most this many groups (default: no limit). */
  limit?: number;
  /** At most this much total cost (default: no budget); see `costOf`. */
  budget?: number;
  /** Cost of starting a run for a group (default: its member count, or 1): roughly the Key Protect rotations it needs. */
  costOf?: (group: G) => number;
}

/** The outcome of {@link selectDueGroups}. */
export interface DueSelection<G> {
  /** Due groups to start now, oldest overdue first. */
  selected: DueGroup<G>[];
  /** Due groups left for a later tick by the limit or budget, in the same order. */
  deferred: DueGroup<G>[];
  /** Earliest `nextCheckAtMs` among groups that are not due (for the next tick), if any. */
  nextCheckAtMs?: number;
}

function checkBound(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isFinite(v) || v < 0)) {
    throw new AppError('VALIDATION_FAILED', `${name} must be a non-negative number, got ${v}`, {
      details: { field: name },
    });
  }
}

/**
 * Picks the groups a scheduler tick should start: due ones (see `dueDecision`), ordered by the time they became due
 * (oldest overdue first; ties keep input order), bounded by `limit` and `budget`. Groups with an active run are
 * skipped (the scheduler resumes runs separately). Selection stops at the first group that does not fit the
 * remaining budget, so a large group is never starved by smaller ones behind it; a group whose cost alone exceeds
 * a positive budget still runs when it comes first; a budget of 0 selects nothing.
 *
 * @throws {AppError} VALIDATION_FAILED when `limit` or `budget` is negative, or a schedule's cron/time zone is malformed.
 */
export function selectDueGroups<G extends SchedulableGroup>(
  groups: readonly G[],
  nowMs: number,
  options: SelectDueGroupsOptions<G> = {},
): DueSelection<G> {
  checkBound('limit', options.limit);
  checkBound('budget', options.budget);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const costOf = options.costOf ?? ((g: G) => g.members?.length ?? 1);
  const due: DueGroup<G>[] = [];
  let nextCheckAtMs: number | undefined;
  for (const group of groups) {
    if (group.activeRunId !== undefined) continue;
    const decision = dueDecision(group.schedule, group, nowMs);
    if (decision.due) due.push({ group, decision });
    else if (decision.nextCheckAtMs !== undefined) {
      nextCheckAtMs = Math.min(nextCheckAtMs ?? Number.POSITIVE_INFINITY, decision.nextCheckAtMs);
    }
  }
  // Array.prototype.sort is stable, so equal due times keep input order.
  due.sort((a, b) => (a.decision.dueAtMs as number) - (b.decision.dueAtMs as number));

  const selected: DueGroup<G>[] = [];
  let remaining = options.budget ?? Number.POSITIVE_INFINITY;
  let i = 0;
  for (; i < due.length && selected.length < limit; i++) {
    const cost = costOf((due[i] as DueGroup<G>).group);
    if (cost > remaining && (selected.length > 0 || remaining <= 0)) break;
    selected.push(due[i] as DueGroup<G>);
    remaining -= cost;
  }
  const result: DueSelection<G> = { selected, deferred: due.slice(i) };
  if (nextCheckAtMs !== undefined) result.nextCheckAtMs = nextCheckAtMs;
  return result;
}
