/**
 * The scheduler tick (the `rotate` function's use case): resume unfinished runs (including region catch-up replays),
 * start due groups, with bounded concurrency, a per-instance Key Protect request budget and a claim deadline before
 * the function's own; whatever is left continues on the next tick. Concurrent ticks split the fleet through
 * `tick:<groupId>` leases: a group claimed by one tick is deferred by the others.
 *
 * Timeline of one tick (deadline = invocation start + max execution time):
 *
 *   start ──claim/advance/claim/advance──▶ claimDeadline (deadline − stopClaimingMarginMs) ── finish in-flight ──▶ deadline
 *                                         no new claims after here; in-flight work gets deadline − finishMarginMs
 */
import type { Clock, Group, Logger, Random, RunId } from '../core/index.js';
import { AppError, hasCode, isAppError } from '../core/index.js';
import { checkLineageText } from '../lineage/index.js';
import { dueDecision, selectDueGroups } from '../scheduling/index.js';
import type { DrillService } from './drill.js';
import { bounded } from './limit.js';
import type { KeyProtectPort, Lease, LeaseRepository, RunRecordBase, Stores } from './ports.js';
import type { AdvanceResult, RotationService } from './service.js';
import { cryptoRandom } from './system.js';

/** Tunables of one tick. */
export interface TickConfig {
  /** Groups worked on at the same time. */
  concurrency: number;
  /** Stop claiming new work this long before the deadline. */
  stopClaimingMarginMs: number;
  /** In-flight work must stop this long before the deadline (persist, release, answer). */
  finishMarginMs: number;
  /** Unfinished runs and due groups read per tick. */
  maxRunsPerTick: number;
  maxGroupsPerTick: number;
  /** Key Protect requests one tick may plan per instance (estimate: `requestsPerMember` per member of a run). */
  requestBudgetPerInstance: number;
  requestsPerMember: number;
  /**
   * Periodic verifications one tick does at most (groups whose `verifyDueAtMs` passed, oldest first; each group
   * comes round again `verifyIntervalMs` after its last verification). They come after every other task.
   */
  maxVerificationsPerTick: number;
}

export const DEFAULT_TICK_CONFIG: TickConfig = {
  concurrency: 4,
  stopClaimingMarginMs: 20_000,
  finishMarginMs: 5_000,
  maxRunsPerTick: 50,
  maxGroupsPerTick: 50,
  requestBudgetPerInstance: 200,
  requestsPerMember: 12,
  maxVerificationsPerTick: 10,
};

export interface TickDeps {
  service: Pick<RotationService, 'startRotation' | 'advanceRun'> & Partial<Pick<RotationService, 'verify'>>;
  stores: Pick<Stores, 'groups' | 'runs' | 'leases'>;
  clock: Clock;
  logger: Logger;
  /** Source of the holder nonce (default: node:crypto). */
  random?: Pick<Random, 'uuid'>;
  config?: Partial<TickConfig>;
  /** Scheduled DR drills, run after the rotation work while time is left (see src/app/drill.ts). */
  drills?: Pick<DrillService, 'runDue'>;
}

export interface TickOptions {
  /** When the invocation will be aborted (from the Code Engine context). */
  deadlineAtMs: number;
  /**
   * This worker's label. The lease holder is `<holder>~<nonce>` with a fresh server-generated nonce, so two ticks
   * never share a lease (leases are re-entrant per holder), whatever the label was built from.
   */
  holder: string;
  /**
   * Who or what triggered the tick, recorded as `trigger.by` on started runs and so in the signed history: a
   * server-generated id (`cron:<uuid>`) or a verified identity, never a value the caller chose. Passes the lineage
   * text rules. Default: the holder.
   */
  triggerId?: string;
}

/** Why a piece of work was left for a later tick. */
export type DeferReason =
  | 'deadline'
  | 'rate-budget'
  | 'claimed-by-another-tick'
  | 'limit'
  | 'run-in-progress'
  | 'rotation-too-soon'
  | 'member-not-active'
  | 'waiting'
  | 'error';

export interface TickSummary {
  holder: string;
  startedAtMs: number;
  finishedAtMs: number;
  /** Unfinished runs advanced (rotation runs and region catch-up replays). */
  resumed: number;
  caughtUp: number;
  /** New runs started for due groups. */
  started: number;
  /** Groups verified against Key Protect: requested (events wake-up) or periodic (`verifyDueAtMs`). */
  verified: number;
  completed: number;
  degraded: number;
  failed: number;
  /** Groups not due any more whose next check time was moved (window closed, disabled…). */
  rescheduled: number;
  deferred: Array<{ groupId: string; runId?: string; reason: DeferReason; detail?: string }>;
  /** Scheduled DR drills run by this tick (present when the tick has drills). */
  drills?: { ran: number; failed: number };
}

type Task =
  | { kind: 'verify'; group: Group; periodic?: boolean }
  | { kind: 'resume'; groupId: string; runId: RunId; runKind: string }
  | { kind: 'start'; group: Group; reason: string };

/** Counts planned Key Protect requests per instance for one tick. */
class RequestBudget {
  readonly #used = new Map<string, number>();
  constructor(readonly perInstance: number) {}
  tryReserve(costs: Map<string, number>): boolean {
    for (const [instance, cost] of costs) {
      if ((this.#used.get(instance) ?? 0) + cost > this.perInstance && (this.#used.get(instance) ?? 0) > 0)
        return false;
    }
    for (const [instance, cost] of costs) this.#used.set(instance, (this.#used.get(instance) ?? 0) + cost);
    return true;
  }
}

function costs(group: Group | undefined, perMember: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of group?.members ?? []) out.set(m.instanceId, (out.get(m.instanceId) ?? 0) + perMember);
  return out;
}

/**
 * Runs one scheduler tick and returns (and logs) its summary. Never throws for a single group's failure: that group
 * is deferred with reason `error` and the tick goes on.
 * @example
 * const summary = await runTick({ service, stores, clock, logger }, { deadlineAtMs: ctx.deadlineAtMs, holder });
 */
export async function runTick(deps: TickDeps, opts: TickOptions): Promise<TickSummary> {
  const cfg: TickConfig = { ...DEFAULT_TICK_CONFIG, ...(deps.config ?? {}) };
  if (!Number.isFinite(opts.deadlineAtMs) || !opts.holder) {
    throw new AppError('VALIDATION_FAILED', 'runTick needs {deadlineAtMs: epoch ms, holder: worker id}');
  }
  const holder = `${opts.holder}~${(deps.random ?? cryptoRandom).uuid()}`;
  const triggerId = checkLineageText('triggerId', opts.triggerId ?? holder, 'by');
  const log = deps.logger.child({ tick: holder });
  const startedAtMs = deps.clock.nowMs();
  const claimDeadlineMs = opts.deadlineAtMs - cfg.stopClaimingMarginMs;
  const workDeadlineMs = opts.deadlineAtMs - cfg.finishMarginMs;
  const summary: TickSummary = {
    holder,
    startedAtMs,
    finishedAtMs: startedAtMs,
    resumed: 0,
    caughtUp: 0,
    started: 0,
    verified: 0,
    completed: 0,
    degraded: 0,
    failed: 0,
    rescheduled: 0,
    deferred: [],
  };
  const budget = new RequestBudget(cfg.requestBudgetPerInstance);
  const groupCache = new Map<string, Group | undefined>();
  const groupOf = async (id: string) => {
    if (!groupCache.has(id)) groupCache.set(id, (await deps.stores.groups.find(id as Group['id']))?.value);
    return groupCache.get(id);
  };

  // 1. Unfinished runs first: they hold material in escrow and keep groups out of lockstep until done.
  const tasks: Task[] = [];
  const unfinished: RunRecordBase[] = await deps.stores.runs.listUnfinished(startedAtMs, cfg.maxRunsPerTick);
  const resumedGroups = new Set<string>();
  for (const r of unfinished) {
    tasks.push({ kind: 'resume', groupId: r.groupId, runId: r.id, runKind: r.kind });
    resumedGroups.add(r.groupId);
  }

  // 2. Due groups, oldest overdue first; groups that are not due get their next check time fixed. A requested
  // verification (an events wake-up that could not finish) brought the group's next due time forward: verify first.
  const candidates = await deps.stores.groups.findDue(startedAtMs, cfg.maxGroupsPerTick);
  for (const g of candidates) groupCache.set(g.id, g);
  const toVerify = deps.service.verify ? candidates.filter((g) => g.verificationRequestedAtMs !== undefined) : [];
  tasks.unshift(...toVerify.map((group) => ({ kind: 'verify' as const, group })));
  const idle: Group[] = [];
  for (const g of candidates) {
    if (resumedGroups.has(g.id)) continue;
    if (!g.activeRunId) idle.push(g);
    else if (await strandedClaim(deps, g, startedAtMs)) {
      const { activeRunId: _stranded, ...free } = g;
      idle.push(free);
    }
  }
  const selection = selectDueGroups(idle, startedAtMs);
  for (const { group, decision } of selection.selected) tasks.push({ kind: 'start', group, reason: decision.reason });
  // Periodic verification last: a member that lost generations in a regional recovery is found without an event.
  if (deps.service.verify && cfg.maxVerificationsPerTick > 0) {
    const queued = new Set(tasks.map((t) => (t.kind === 'resume' ? t.groupId : t.group.id)));
    for (const group of await deps.stores.groups.findVerifyDue(startedAtMs, cfg.maxVerificationsPerTick)) {
      if (!queued.has(group.id)) tasks.push({ kind: 'verify', group, periodic: true });
    }
  }
  for (const g of idle) {
    if (selection.selected.some((s) => s.group.id === g.id)) continue;
    if (toVerify.some((v) => v.id === g.id)) continue; // rescheduled by the next tick, once verified
    const d = dueDecision(g.schedule, g, startedAtMs);
    if (d.nextCheckAtMs === g.nextDueAtMs) continue;
    await deps.stores.groups.mutate(g.id, (cur) => {
      const out: Group = { ...cur };
      if (d.nextCheckAtMs === undefined) delete out.nextDueAtMs;
      else out.nextDueAtMs = d.nextCheckAtMs;
      return out;
    });
    summary.rescheduled += 1;
  }

  // 3. Work through the queue with bounded concurrency.
  const defer = (groupId: string, reason: DeferReason, runId?: string, detail?: string) =>
    summary.deferred.push({ groupId, reason, ...(runId ? { runId } : {}), ...(detail ? { detail } : {}) });
  const tally = (r: AdvanceResult, groupId: string) => {
    if (r.status === 'completed') summary.completed += 1;
    else if (r.status === 'degraded') summary.degraded += 1;
    else if (r.status === 'failed') summary.failed += 1;
    else if (r.stopped === 'lease-held' || r.stopped === 'lease-lost') {
      defer(groupId, 'claimed-by-another-tick', r.runId, r.reason);
    } else if (r.nextAttemptAtMs !== undefined) defer(groupId, 'waiting', r.runId, r.reason);
  };

  const work = async (task: Task) => {
    const groupId = task.kind === 'resume' ? task.groupId : task.group.id;
    const runId = task.kind === 'resume' ? task.runId : undefined;
    if (deps.clock.nowMs() >= claimDeadlineMs) return defer(groupId, 'deadline', runId);
    const group = task.kind === 'resume' ? await groupOf(groupId) : task.group;
    // A verification reads each member's key once.
    const perMember = task.kind === 'verify' ? 1 : cfg.requestsPerMember;
    if (!budget.tryReserve(costs(group, perMember))) return defer(groupId, 'rate-budget', runId);
    const claim = await claimGroup(
      deps.stores.leases,
      groupId,
      holder,
      opts.deadlineAtMs - deps.clock.nowMs(),
      deps.clock,
    );
    if (!claim) return defer(groupId, 'claimed-by-another-tick', runId);
    try {
      if (task.kind === 'verify') {
        const trigger = `${task.periodic ? 'periodic:' : ''}tick:${holder}`.slice(0, 120);
        await deps.service.verify!(groupId, { trigger, probes: false });
        summary.verified += 1;
      } else if (task.kind === 'resume') {
        const r = await deps.service.advanceRun(task.runId, { deadlineAtMs: workDeadlineMs, holder });
        if (task.runKind === 'rotation' || task.runKind === 'create') summary.resumed += 1;
        else summary.caughtUp += 1;
        tally(r, groupId);
      } else {
        // claim and first pass in one: the claim's reading overlaps the escrow and the import tokens (RotationService)
        const { result: r } = await deps.service.startRotation(groupId, {
          trigger: { kind: 'schedule', by: triggerId, reason: task.reason },
          deadlineAtMs: workDeadlineMs,
          holder,
        });
        summary.started += 1;
        tally(r, groupId);
      }
    } catch (err) {
      if (hasCode(err, 'RUN_IN_PROGRESS')) defer(groupId, 'run-in-progress', runId);
      else if (hasCode(err, 'ROTATION_TOO_SOON')) defer(groupId, 'rotation-too-soon', runId, (err as AppError).message);
      else if (hasCode(err, 'MEMBER_NOT_ACTIVE')) defer(groupId, 'member-not-active', runId, (err as AppError).message);
      else {
        defer(groupId, 'error', runId, isAppError(err) ? err.code : 'INTERNAL');
        log.error('tick.group-failed', {
          groupId,
          ...(runId ? { runId } : {}),
          code: isAppError(err) ? err.code : 'INTERNAL',
          error: err instanceof Error ? err.message : String(err),
        });
      }
    } finally {
      await deps.stores.leases.release(claim).catch(() => undefined);
    }
  };

  // `work` never throws: a group's failure is deferred
  await bounded(tasks, cfg.concurrency, async (task) => {
    await work(task);
  });
  for (const { group } of selection.deferred) defer(group.id, 'limit');
  if (deps.drills && deps.clock.nowMs() < claimDeadlineMs) {
    summary.drills = await deps.drills
      .runDue({
        deadlineAtMs: claimDeadlineMs,
        holder: opts.holder,
        ...(opts.triggerId ? { triggerId: opts.triggerId } : {}),
      })
      .catch((err: unknown) => {
        log.error('tick.drills-failed', { error: err instanceof Error ? err.message : String(err) });
        return { ran: 0, failed: 0 };
      });
  }

  summary.finishedAtMs = deps.clock.nowMs();
  log.info('tick.summary', {
    resumed: summary.resumed,
    caughtUp: summary.caughtUp,
    started: summary.started,
    verified: summary.verified,
    completed: summary.completed,
    degraded: summary.degraded,
    failed: summary.failed,
    rescheduled: summary.rescheduled,
    deferred: summary.deferred.length,
    deferredReasons: [...new Set(summary.deferred.map((d) => d.reason))],
    durationMs: summary.finishedAtMs - startedAtMs,
  });
  return summary;
}

/** How long a claim may point at a run that does not exist before a tick treats the group as idle again. */
const STRANDED_CLAIM_GRACE_MS = 60_000;

/**
 * A claim whose run document was never written (the store failed between the two writes of the claim, or the
 * claim's answer was lost): the group names an active run that does not exist. After a grace period (so an
 * in-flight claim is not raced), the group is idle again and the next claim (startRotation) takes it.
 */
async function strandedClaim(deps: TickDeps, g: Group, nowMs: number): Promise<boolean> {
  if (!g.activeRunId || g.updatedAtMs > nowMs - STRANDED_CLAIM_GRACE_MS) return false;
  try {
    await deps.stores.runs.get(g.activeRunId);
    return false;
  } catch (err) {
    if (hasCode(err, 'RUN_NOT_FOUND')) {
      deps.logger.warn('group claims a run that was never written; claiming it again', {
        groupId: g.id,
        runId: g.activeRunId,
      });
      return true;
    }
    throw err;
  }
}

async function claimGroup(
  leases: LeaseRepository,
  groupId: string,
  holder: string,
  ttlMs: number,
  clock: Clock,
): Promise<Lease | undefined> {
  return leases.acquire(`tick:${groupId}`, holder, Math.max(1_000, ttlMs), clock.nowMs());
}

/**
 * Wraps a Key Protect port so that requests to one instance never exceed `perSecond` (a token bucket per instance,
 * waiting when empty). Protects each instance's API rate limit when many groups share it. Counts HTTP requests, not
 * calls: a secure import (`rotateWithMaterial`, `createImportedKey`) is three (POST and GET import token, then the
 * rotate or create).
 */
/** HTTP requests of one secure import: POST /import_token, GET /import_token, then the rotate or create. */
const SECURE_IMPORT_REQUESTS = 3;

export function withRequestRateBudget(
  kp: KeyProtectPort,
  opts: { perSecond: number; clock: Clock; sleep?: (ms: number) => Promise<void> },
): KeyProtectPort {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const buckets = new Map<string, { tokens: number; atMs: number }>();
  const take = async (instanceId: string, signal?: AbortSignal, requests = 1) => {
    const n = Math.min(requests, opts.perSecond);
    for (;;) {
      const now = opts.clock.nowMs();
      const b = buckets.get(instanceId) ?? { tokens: opts.perSecond, atMs: now };
      b.tokens = Math.min(opts.perSecond, b.tokens + ((now - b.atMs) / 1000) * opts.perSecond);
      b.atMs = now;
      buckets.set(instanceId, b);
      if (b.tokens >= n) {
        b.tokens -= n;
        return;
      }
      if (signal?.aborted) throw new AppError('DEADLINE_EXCEEDED', 'Request budget wait aborted');
      await sleep(Math.ceil(((n - b.tokens) / opts.perSecond) * 1000));
    }
  };
  return {
    getKey: async (ref, o) => {
      await take(ref.instanceId, o?.signal);
      return kp.getKey(ref, o);
    },
    findKeyByAlias: async (at, alias, o) => {
      await take(at.instanceId, o?.signal);
      return kp.findKeyByAlias(at, alias, o);
    },
    listVersions: async (ref, o) => {
      await take(ref.instanceId, o?.signal);
      return kp.listVersions(ref, o);
    },
    createImportedKey: async (i, o) => {
      await take(i.instanceId, o?.signal, SECURE_IMPORT_REQUESTS);
      return kp.createImportedKey(i, o);
    },
    createGeneratedRootKey: async (i, o) => {
      await take(i.instanceId, o?.signal);
      return kp.createGeneratedRootKey(i, o);
    },
    rotateWithMaterial: async (ref, m, o) => {
      await take(ref.instanceId, o?.signal, SECURE_IMPORT_REQUESTS);
      return kp.rotateWithMaterial(ref, m, o);
    },
    wrap: async (ref, p, aad, o) => {
      await take(ref.instanceId, o?.signal);
      return kp.wrap(ref, p, aad, o);
    },
    unwrap: async (ref, c, aad, o) => {
      await take(ref.instanceId, o?.signal);
      return kp.unwrap(ref, c, aad, o);
    },
  };
}
