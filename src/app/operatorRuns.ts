/**
 * Operator actions on one run, so that an operator can always unblock a group: retry it now, or stop it safely.
 *
 * Both act under the group lease `group:<id>` (holder `retry-<uuid>` / `stop-<uuid>`), so no worker is in the middle
 * of a step meanwhile, and save the run with its revision. A held lease answers LEASE_HELD: a worker is advancing the
 * run right now (its lease expires on its own if that worker died).
 *
 * **Retry** re-opens the run (`reopenRun`: a fresh deadline, no backoff, blocked members pending again) so the next
 * tick advances it at once. Nothing an earlier attempt or an event scheduled (a wait until the year 9999, say)
 * survives it; the plan step re-reads every member, so Key Protect's 1 h rule is still applied from what Key Protect
 * says. A stopped run can be retried while its generation is still the group's next one and no other run holds
 * the group: it rolls forward with the material it escrowed.
 *
 * **Stop** ends a rotation run before its primary is promoted, the only point where stopping is safe:
 * - the primary never holds material a duplicate lacks (promotion comes after every duplicate is staged and
 *   verified), so a stop at `promote` or later is refused: the run can only finish (retry it);
 * - duplicates already staged keep the run's material as their current version (rotations cannot be undone). DEKs
 *   wrapped at the primary still unwrap everywhere; a DEK wrapped at such a duplicate would not unwrap at the
 *   primary. The group is `degraded` with that explanation until a run completes: a retry of the stopped run
 *   (promotes the primary with the same material) or the next rotation (supersedes it on every member);
 * - nothing staged: the group is as before the run (`healthy`, unless it was degraded or diverged for other reasons);
 * - the escrowed material stays with the run (never used again unless the run is retried);
 * - the run ends with status `stopped` (terminal: the tick never resumes it, the decider does nothing with it) and a
 *   `stop` record (who, when, why, what was left); a `stopped` transition and the notification record it too. The
 *   signed lineage is not touched: no generation was completed;
 * - the group's next due time restarts from the stop (as after a completed generation), so the schedule does not
 *   start a replacement run at the next tick; `lockstep rotate` starts one earlier.
 */
import { AppError, asRunId, type Group, hasCode, type RunId, type Trigger } from '../core/index.js';
import {
  duplicatesOf,
  MemberProgress,
  normalizeStep,
  primaryOf,
  type RotationRun,
  RunKind,
  type RunStop,
  reopenRun,
  Step,
} from '../rotation/index.js';
import type { Lease, Versioned } from './ports.js';
import { runsOf } from './runDocument.js';
import type { RunnerContext } from './runner.js';

/** What an operator action did. */
export interface RunActionResult {
  runId: RunId;
  groupId: string;
  action: 'retried' | 'stopped';
  status: RotationRun['status'];
  step: RotationRun['step'];
  /** For a stop: what it left behind. */
  stop?: RunStop;
  groupStatus: Group['status'];
}

/** The operator use cases on a run. */
export interface OperatorRuns {
  /**
   * Re-opens a run now (see the module comment).
   * @throws {AppError} RUN_NOT_FOUND, RUN_STATE_INVALID (completed, diverged, superseded), RUN_IN_PROGRESS (another
   * run holds the group), LEASE_HELD (a worker is advancing it right now)
   */
  retryRun(runId: string, opts: { trigger: Trigger }): Promise<RunActionResult>;
  /**
   * Stops a rotation run before promotion (see the module comment).
   * @throws {AppError} RUN_NOT_FOUND, RUN_STATE_INVALID (finished, not a rotation, primary promoted or about to be),
   * LEASE_HELD
   */
  stopRun(runId: string, opts: { trigger: Trigger }): Promise<RunActionResult>;
}

const RETRYABLE: readonly string[] = ['pending', 'running', 'degraded', 'failed', 'stopped'];
const STOPPABLE: readonly string[] = ['pending', 'running', 'degraded', 'failed'];
/** Steps before any command could have reached the primary. */
const BEFORE_PROMOTE: readonly string[] = [Step.PLAN, Step.GENERATE, Step.STAGE, Step.VERIFY];

/** Which operator actions a run allows now (the page shows only these forms; the use cases check again). */
export function runActions(run: RotationRun): { retry: boolean; stop: boolean } {
  let stop = true;
  try {
    checkStop(run);
  } catch {
    stop = false;
  }
  return { retry: RETRYABLE.includes(run.status), stop };
}

/** Builds the operator use cases over the runner's context. */
export function createOperatorRuns(ctx: RunnerContext): OperatorRuns {
  const runs = runsOf(ctx.stores);
  const now = () => ctx.clock.nowMs();
  const log = ctx.logger.child({ component: 'operator-runs' });

  /** Runs `fn` under the group lease; LEASE_HELD when a worker holds it. */
  async function underGroupLease<T>(run: RotationRun, action: string, fn: () => Promise<T>): Promise<T> {
    const holder = `${action}-${ctx.random.uuid()}`;
    const lease: Lease | undefined = await ctx.stores.leases.acquire(
      `group:${run.groupId}`,
      holder,
      ctx.config.groupLeaseTtlMs,
      now(),
    );
    if (!lease) {
      throw new AppError(
        'LEASE_HELD',
        `A worker is advancing run ${run.id} right now; try again in a minute (a dead worker's lease expires within ${Math.ceil(ctx.config.groupLeaseTtlMs / 1000)} s)`,
        { retryable: true, details: { runId: run.id, lease: `group:${run.groupId}` } },
      );
    }
    try {
      return await fn();
    } finally {
      await ctx.stores.leases.release(lease).catch(() => undefined);
    }
  }

  /** Saves `change(run)` with the run's revision; re-reads and re-applies when events appended evidence meanwhile. */
  async function saveRun(
    id: RunId,
    check: (run: RotationRun) => void,
    change: (run: RotationRun) => RotationRun,
  ): Promise<RotationRun> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur: Versioned<RotationRun> = await runs.get(id);
      check(cur.value);
      const next = change(cur.value);
      try {
        return (await runs.save(next, cur.rev)).value;
      } catch (err) {
        if (!hasCode(err, 'STORE_CONFLICT')) throw err;
      }
    }
    throw new AppError('STORE_CONFLICT', `Run ${id} kept changing; try again`, { retryable: true });
  }

  const byOf = (t: Trigger) => `${t.kind}:${t.by}`;

  return {
    async retryRun(id, opts) {
      const runId = asRunId(id);
      checkTrigger(opts?.trigger);
      const { value: first } = await runs.get(runId);
      const checkRetry = (run: RotationRun, group: Group) => {
        if (!RETRYABLE.includes(run.status)) {
          throw new AppError(
            'RUN_STATE_INVALID',
            run.status === 'diverged'
              ? `Run ${run.id} found material it did not write and ended; a healing rotation replaces it (lockstep rotate ${run.groupId})`
              : `Run ${run.id} is ${run.status}; only an unfinished, failed or stopped run can be retried`,
            { details: { runId: run.id, status: run.status } },
          );
        }
        const holdsGroup =
          run.kind === RunKind.ROTATION || run.kind === RunKind.CREATE || run.kind === RunKind.CATCH_UP;
        if (holdsGroup && group.activeRunId !== undefined && group.activeRunId !== run.id) {
          throw new AppError('RUN_IN_PROGRESS', `Run ${group.activeRunId} holds group ${group.id}; retry that one`, {
            details: { runId: group.activeRunId },
          });
        }
        const catchUp = run.kind === RunKind.CATCH_UP && run.generation === group.currentGeneration;
        if (run.kind !== RunKind.ADD_REGION && !catchUp && run.generation !== group.currentGeneration + 1) {
          throw new AppError(
            'RUN_STATE_INVALID',
            `Run ${run.id} was for generation ${run.generation}; group ${group.id} is at generation ${group.currentGeneration}, so it is superseded`,
            { details: { runId: run.id, generation: run.generation, currentGeneration: group.currentGeneration } },
          );
        }
      };
      const groupNow = async () => (await ctx.stores.groups.get(first.groupId)).value;
      checkRetry(first, await groupNow());
      return underGroupLease(first, 'retry', async () => {
        const group = await groupNow();
        const nowMs = now();
        const saved = await saveRun(
          runId,
          (run) => checkRetry(run, group),
          (run) => {
            const reopened = reopenRun(run, nowMs, nowMs + ctx.config.runDeadlineMs);
            delete reopened.stop;
            reopened.notes.push(`retried by ${byOf(opts.trigger)} at ${new Date(nowMs).toISOString()}`);
            return reopened;
          },
        );
        // a rotation (or create) run holds its group; a region replay never claims it (replay.ts)
        const holdsGroup =
          saved.kind === RunKind.ROTATION || saved.kind === RunKind.CREATE || saved.kind === RunKind.CATCH_UP;
        const g = holdsGroup
          ? await ctx.stores.groups.mutate(saved.groupId, (cur) => {
              const out: Group = { ...cur, activeRunId: saved.id, updatedAtMs: nowMs };
              if (cur.status !== 'diverged') {
                out.status = 'rotating';
                delete out.statusReason;
              }
              return out;
            })
          : await ctx.stores.groups.get(saved.groupId);
        log.info('run retried', { runId: saved.id, groupId: saved.groupId, by: byOf(opts.trigger) });
        return {
          runId: saved.id,
          groupId: saved.groupId,
          action: 'retried' as const,
          status: saved.status,
          step: saved.step,
          groupStatus: g.value.status,
        };
      });
    },

    async stopRun(id, opts) {
      const runId = asRunId(id);
      checkTrigger(opts?.trigger);
      const { value: first } = await runs.get(runId);
      checkStop(first);
      return underGroupLease(first, 'stop', async () => {
        const nowMs = now();
        const by = byOf(opts.trigger);
        let stop: RunStop | undefined;
        let reasonBefore: string | undefined;
        const saved = await saveRun(runId, checkStop, (run) => {
          reasonBefore = run.statusReason;
          stop = stopRecord(run, by, opts.trigger.reason, nowMs);
          return stoppedRun(run, stop, nowMs);
        });
        const record = stop as RunStop;
        const g = await ctx.stores.groups.mutate(saved.groupId, (cur) => {
          const out = groupAfterStop(cur, saved.id, record, reasonBefore, nowMs);
          const due = ctx.nextDueAtMs(out, nowMs);
          if (due !== undefined) out.nextDueAtMs = due;
          return out;
        });
        log.warn('run stopped', { runId: saved.id, groupId: saved.groupId, by, staged: record.staged.length });
        await ctx.notifier
          ?.publish({
            type: 'com.ibm.lockstep.rotation.stopped',
            subject: saved.groupId,
            data: {
              groupId: saved.groupId,
              runId: saved.id,
              generation: saved.generation,
              status: saved.status,
              step: record.step,
              reason: record.summary,
            },
          })
          .catch((err: unknown) =>
            log.warn('notification failed', { kind: 'stopped', code: (err as AppError)?.code ?? 'INTERNAL' }),
          );
        return {
          runId: saved.id,
          groupId: saved.groupId,
          action: 'stopped' as const,
          status: saved.status,
          step: saved.step,
          stop: record,
          groupStatus: g.value.status,
        };
      });
    },
  };
}

/** An operator action names who asked; its reason is bounded, printable text (it is shown on the page and in exports). */
function checkTrigger(t: Trigger | undefined): void {
  if (
    !t ||
    typeof t.by !== 'string' ||
    !/^[\x21-\x7e]{1,256}$/.test(t.by) ||
    !['operator', 'schedule', 'event'].includes(t.kind)
  ) {
    throw new AppError('VALIDATION_FAILED', 'trigger must be {kind, by: the IAM id who asked}', {
      details: { field: 'trigger' },
    });
  }
  const r = t.reason;
  if (
    r !== undefined &&
    (typeof r !== 'string' || r.length > 500 || [...r].some((c) => c < ' ' || c === '\x7f') || /^[=+\-@]/.test(r))
  ) {
    throw new AppError(
      'VALIDATION_FAILED',
      'reason must be at most 500 printable characters, not starting with = + - @',
      { details: { field: 'reason' } },
    );
  }
}

/** Refuses a stop that is not safe or not meaningful. */
function checkStop(run: RotationRun): void {
  if (run.kind !== RunKind.ROTATION) {
    throw new AppError(
      'RUN_STATE_INVALID',
      run.kind === RunKind.CREATE
        ? `Run ${run.id} creates the group's keys, which already hold its material; it can only finish (retry it)`
        : `Run ${run.id} is a ${run.kind} run; only rotation runs can be stopped`,
      { details: { runId: run.id, kind: run.kind } },
    );
  }
  if (!STOPPABLE.includes(run.status)) {
    throw new AppError('RUN_STATE_INVALID', `Run ${run.id} is ${run.status} already; there is nothing to stop`, {
      details: { runId: run.id, status: run.status },
    });
  }
  const step = normalizeStep(run);
  const primary = primaryOf(run);
  if (!BEFORE_PROMOTE.includes(step) || primary.progress !== MemberProgress.PENDING || primary.attempts > 0) {
    throw new AppError(
      'RUN_STATE_INVALID',
      `Run ${run.id} is at step ${step}: its primary holds (or may hold) the new material, so the run can only finish — retry it (lockstep run retry ${run.id}) to record the generation`,
      { details: { runId: run.id, step } },
    );
  }
}

/** The run as a stop leaves it: status `stopped`, the stop record, a `stopped` transition. */
function stoppedRun(run: RotationRun, stop: RunStop, nowMs: number): RotationRun {
  const next: RotationRun = structuredClone(run);
  next.transitions.push({
    atMs: nowMs,
    from: stop.step,
    to: stop.step,
    status: 'stopped',
    note: `stopped by ${stop.by}`,
  });
  next.status = 'stopped';
  next.statusReason = stop.summary;
  next.finishedAtMs = nowMs;
  delete next.nextAttemptAtMs;
  next.updatedAtMs = nowMs;
  next.notes.push(stop.summary);
  next.stop = stop;
  return next;
}

/**
 * The group after a stop: free of the run; degraded with the explanation when a duplicate holds the run's material;
 * else healthy again if it was only rotating, failed or degraded because of this run (`reasonBefore`).
 */
function groupAfterStop(
  cur: Group,
  runId: RunId,
  stop: RunStop,
  reasonBefore: string | undefined,
  nowMs: number,
): Group {
  const out: Group = { ...cur, updatedAtMs: nowMs };
  if (cur.activeRunId === runId) delete out.activeRunId;
  if (stop.staged.length > 0) {
    if (cur.status !== 'diverged') out.status = 'degraded';
    out.statusReason = stop.summary;
  } else if (
    cur.status === 'rotating' ||
    cur.status === 'failed' ||
    (cur.status === 'degraded' && cur.statusReason === reasonBefore)
  ) {
    out.status = 'healthy';
    delete out.statusReason;
  }
  return out;
}

/** What a stop leaves behind, and the explanation operators and auditors read. */
function stopRecord(run: RotationRun, by: string, reason: string | undefined, nowMs: number): RunStop {
  const step = normalizeStep(run);
  const staged = duplicatesOf(run)
    .filter((m) => m.progress === MemberProgress.STAGED)
    .map((m) => ({
      slot: m.slot,
      region: m.region,
      ...(m.crn ? { crn: m.crn } : {}),
      ...(m.versionId ? { versionId: m.versionId } : {}),
    }));
  const notStaged = run.members
    .filter((m) => m.role === 'primary' || m.progress !== MemberProgress.STAGED)
    .map((m) => ({
      slot: m.slot,
      role: m.role,
      region: m.region,
      ...(m.attempts > 0 && m.lastError ? { unconfirmed: true } : {}),
    }));
  const escrowKept = run.escrow !== undefined;
  const fp = run.fingerprint ? ` (fingerprint ${run.fingerprint})` : '';
  const head = `Stopped by ${by}${reason ? ` (${reason})` : ''} at step ${step}`;
  const summary =
    staged.length === 0
      ? `${head} before any member changed: every member still holds generation ${run.generation - 1}, the group is as before the run.${escrowKept ? ` The escrowed material of generation ${run.generation}${fp} stays with the run and is used only if the run is retried.` : ''}`
      : `${head}: duplicate(s) ${staged.map((s) => `${s.region} (version ${s.versionId ?? '?'})`).join(', ')} already hold generation ${run.generation}'s material${fp} as their current version; ${notStaged.map((m) => `${m.role} ${m.region}${m.unconfirmed ? ' (unconfirmed: an attempt failed without a clear answer)' : ''}`).join(', ')} do not. DEKs wrapped at the primary still unwrap everywhere; a DEK wrapped at those duplicates does not unwrap at the primary. The material stays escrowed with the run: \`lockstep run retry ${run.id}\` promotes the primary with it (roll forward), or the next rotation supersedes it on every member.`;
  return {
    atMs: nowMs,
    by,
    ...(reason ? { reason } : {}),
    step,
    staged,
    notStaged,
    escrowKept,
    ...(run.fingerprint ? { fingerprint: run.fingerprint } : {}),
    summary,
  };
}
