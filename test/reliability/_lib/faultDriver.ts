/**
 * Drives a small fleet through one fault the way production does and nothing else: the scheduler tick (`runTick`,
 * as the `rotate` function calls it) every few simulated minutes, the emulator clock advanced between ticks, no
 * internal repair call. Faults are switched on and off by the case's hooks (by simulated time or tick), and the
 * driver records, per group, when its new generation was complete, then checks the end state.
 *
 *   advance clock → every group due ─ tick ─ +5 min ─ tick ─ +5 min ─ … ─ every group converged (or the tick limit)
 *                   ▲ fault start (t = 0)   hooks switch faults by elapsed simulated time before each tick
 */
import type { RotationService, Stores } from '../../../src/app/index.js';
import { runTick, type TickConfig, type TickSummary } from '../../../src/app/tick.js';
import type { Group, GroupId } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { expectChain } from '../../support/assertions.js';
import type { LocalStack } from '../../support/localStack.js';
import { leakedSecrets } from '../../support/rotationHarness.js';

/** The cron cadence of the `rotate` function in these scenarios (simulated). */
export const TICK_EVERY_MS = 5 * 60_000;
/** createStackGroup schedules every 90 days: advancing this far makes every group of the fleet due again. */
export const NEXT_CYCLE_MS = 91 * 24 * 3_600_000;
/** A normal invocation's remaining time. */
const NORMAL_DEADLINE_MS = 10 * 60_000;

export interface TickContext {
  /** 0-based tick number since the fault started. */
  index: number;
  /** Simulated ms since the fault started. */
  elapsedMs: number;
}

export interface FaultCase {
  /** Row name in the report. */
  name: string;
  /** The orchestrator as deployed for this case (e.g. its Key Protect client through a proxy); default `s.service()`. */
  service?: RotationService;
  /** The orchestrator's view of the store (e.g. through a failing proxy); default `s.stores`. */
  stores?: Stores;
  /** Before each tick: switch faults on or off. */
  beforeTick?(t: TickContext): void | Promise<void>;
  /** Runs while the tick runs (a concurrent writer); must settle soon after `signal` aborts. */
  alongside?(t: TickContext, signal: AbortSignal): Promise<void>;
  /** Remaining time and tick config of this invocation (default: 10 minutes, production defaults). */
  invocation?(t: TickContext, nowMs: number): { deadlineAtMs: number; config?: Partial<TickConfig> };
  /** After each tick (with its summary, or undefined when the tick threw); may return invariant violations. */
  afterTick?(t: TickContext, summary: TickSummary | undefined): Promise<string[] | undefined> | string[] | undefined;
  /** Switches every fault off (called before the end-state checks). */
  cleanup?(): void | Promise<void>;
  /** Give up after this many ticks (a group not converged by then is a violation). */
  maxTicks: number;
}

export interface GroupConvergence {
  groupId: string;
  converged: boolean;
  /** Simulated ms from fault start to the finish of the new generation's run (its lineage record). */
  convergeMs?: number;
  /** Ticks until the driver saw it converged. */
  ticks?: number;
}

export interface FaultOutcome {
  groups: GroupConvergence[];
  ticks: number;
  /** Ticks that threw (what the function would answer 5xx for), by error code. */
  tickErrors: Record<string, number>;
  /** Step failures the runs logged and absorbed, by error code. */
  stepFailures: Record<string, number>;
  /** Invariant violations, one line each. */
  violations: string[];
}

const codeOf = (err: unknown): string =>
  typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'INTERNAL';

const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

/** Step failures logged since line `from` of the stack's captured log, by code. */
function stepFailuresSince(s: LocalStack, from: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of s.log.lines.slice(from)) {
    if (!line.includes('step failed') && !line.includes('tick.group-failed')) continue;
    const e = JSON.parse(line) as { msg?: string; code?: string };
    if (e.msg === 'step failed' || e.msg === 'member step failed' || e.msg === 'tick.group-failed')
      bump(out, e.code ?? 'unknown');
  }
  return out;
}

/**
 * Makes every group of `groups` due, runs `fc` until each holds a new generation or `fc.maxTicks` ticks have run,
 * then switches the faults off and checks the end state of every group.
 */
export async function convergeFleet(s: LocalStack, groups: readonly Group[], fc: FaultCase): Promise<FaultOutcome> {
  s.stack.kp.clearFaults();
  s.clock.advance(NEXT_CYCLE_MS);
  const service = fc.service ?? s.service();
  const stores = fc.stores ?? s.stores;
  const before = new Map<GroupId, { generation: number; versions: number[] }>();
  for (const g of groups) {
    const cur = (await s.stores.groups.get(g.id)).value;
    const versions = await Promise.all(cur.members.map(async (m) => (await s.kp.listVersions(m)).length));
    before.set(g.id, { generation: cur.currentGeneration, versions });
  }
  const logFrom = s.log.lines.length;
  const startMs = s.clock.nowMs();
  const conv = new Map<string, GroupConvergence>(groups.map((g) => [g.id, { groupId: g.id, converged: false }]));
  const tickErrors: Record<string, number> = {};
  const violations: string[] = [];
  let ticks = 0;

  for (let index = 0; index < fc.maxTicks && [...conv.values()].some((c) => !c.converged); index++) {
    const t: TickContext = { index, elapsedMs: s.clock.nowMs() - startMs };
    await fc.beforeTick?.(t);
    const stop = new AbortController();
    const side = fc.alongside?.(t, stop.signal);
    const inv = fc.invocation?.(t, s.clock.nowMs()) ?? { deadlineAtMs: s.clock.nowMs() + NORMAL_DEADLINE_MS };
    let summary: TickSummary | undefined;
    try {
      summary = await runTick(
        { service, stores, clock: s.clock, logger: s.log.logger, ...(inv.config ? { config: inv.config } : {}) },
        {
          deadlineAtMs: inv.deadlineAtMs,
          holder: `rotate-${fc.name.replace(/\W+/g, '-')}-${index}`,
          triggerId: `cron-${index}`,
        },
      );
    } catch (err) {
      bump(tickErrors, codeOf(err)); // the cron fires again at the next tick
    } finally {
      stop.abort();
      await side;
    }
    violations.push(...((await fc.afterTick?.(t, summary)) ?? []));
    ticks = index + 1;
    for (const c of conv.values()) {
      if (c.converged) continue;
      const g = (await s.stores.groups.get(c.groupId as GroupId)).value;
      const target = before.get(g.id)!.generation + 1;
      if (g.currentGeneration < target || g.activeRunId) continue;
      const record = await s.stores.lineage.get(g.id, target);
      Object.assign(c, { converged: true, convergeMs: record.finishedAtMs - startMs, ticks });
    }
    s.clock.advance(TICK_EVERY_MS);
  }

  await fc.cleanup?.();
  s.stack.kp.clearFaults();
  const leaked = leakedSecrets(s.log.lines.slice(logFrom).join('\n'), s.random.secrets);
  if (leaked.length) violations.push(`key material in log lines: ${leaked.length} secrets`);
  for (const g of groups) {
    const c = conv.get(g.id)!;
    const b = before.get(g.id)!;
    const target = b.generation + 1;
    const cur = (await s.stores.groups.get(g.id)).value;
    const runs = (await s.stores.runs.listByGroup(g.id, 20)) as RotationRun[];
    for (const r of runs.filter((x) => x.createdAtMs >= startMs)) {
      if (r.status === 'failed' || r.status === 'diverged') {
        violations.push(`${g.id}: run ${r.id} ${r.status}: ${r.statusReason ?? ''}`);
      }
    }
    if (!c.converged) {
      const simMin = Math.round((s.clock.nowMs() - startMs) / 60_000);
      violations.push(
        `${g.id}: not converged after ${ticks} ticks (${simMin} simulated min): status ${cur.status}, generation ${cur.currentGeneration} of ${target}${cur.statusReason ? ` (${cur.statusReason})` : ''}`,
      );
      continue;
    }
    if (cur.status !== 'healthy' || cur.currentGeneration !== target) {
      violations.push(
        `${g.id}: ended ${cur.status} at generation ${cur.currentGeneration}, expected healthy at ${target}`,
      );
    }
    const done = runs.filter((r) => r.generation === target && r.status === 'completed');
    if (done.length !== 1) violations.push(`${g.id}: ${done.length} completed runs for generation ${target}`);
    for (const [i, m] of cur.members.entries()) {
      const added = (await s.kp.listVersions(m)).length - b.versions[i]!;
      if (added !== 1)
        violations.push(`${g.id}: ${m.role} ${m.region} got ${added} new versions for generation ${target}`);
    }
    const v = await s.service().verify(g.id);
    if (!v.ok) {
      const bad = v.probes.filter((p) => !p.ok).map((p) => `g${p.generation} ${p.crn}: ${p.error ?? 'mismatch'}`);
      violations.push(`${g.id}: verify failed: ${bad.slice(0, 3).join('; ')}`);
    }
    try {
      await expectChain(s.stores, cur, target);
    } catch (err) {
      violations.push(`${g.id}: lineage chain invalid: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return {
    groups: [...conv.values()],
    ticks,
    tickErrors,
    stepFailures: stepFailuresSince(s, logFrom),
    violations,
  };
}

/** Sorted-key one-liner of a tally, e.g. `UPSTREAM_RATE_LIMITED×4, STORE_UNAVAILABLE×1`. */
export function tally(m: Record<string, number>): string {
  const parts = Object.entries(m)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k}×${n}`);
  return parts.length ? parts.join(', ') : 'none';
}
