/**
 * DR-unreadable window (issue 8). An application workload wraps DEKs at the primary continuously while rotations
 * run and immediately unwraps each at every duplicate (a DR failover). With lockstep (stage the duplicates, verify,
 * promote the primary last) no unwrap may fail: that count is the scenario's violations. The same workload against a
 * deliberately naive primary-first script (test/reliability/_lib/drNaiveRotation.ts) must see failures — proof the
 * workload detects the window, which is what makes lockstep's 0 meaningful. Both run on the same stack, with
 * per-call latency and jitter injected at every emulator region so the window has a realistic width.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyProtectPort } from '../../src/app/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../support/localStack.js';
import { naivePrimaryFirstRotation } from './_lib/drNaiveRotation.js';
import { applicationKpClient, type DrWorkloadStats, describeFailure, startDrWorkload } from './_lib/drWorkload.js';
import { median, recordScenario, reliabilityLevel, scale } from './_lib/report.js';

const HOUR = 3_600_000;
/** Per request at every region: a Key Protect call across regions is tens of ms, not the loopback's 1 ms. */
const LATENCY = { latencyMs: 20, latencyJitterMs: 30 };
/** The naive script's fixed pause between members (a sequential cron script's per-step overhead). */
const NAIVE_PAUSE_MS = 100;

const cases = scale({
  bounded: [{ dups: 2, rotations: 3 }],
  full: [1, 2, 4].map((dups) => ({ dups, rotations: 6 })),
  soak: [1, 2, 4].map((dups) => ({ dups, rotations: 20 })),
});
const TIMEOUT_MS = scale({ bounded: 180_000, full: 900_000, soak: 3_600_000 });

let s: LocalStack;
let app: KeyProtectPort;

beforeAll(async () => {
  s = await startLocalStack();
  for (const region of s.regions) s.stack.kp.setFaults({ region }, LATENCY);
  app = applicationKpClient(s);
});
afterAll(async () => {
  await s?.close();
});

const pct = (n: number, d: number) => (d === 0 ? '0' : ((100 * n) / d).toFixed(1));
const countBy = <T>(xs: readonly T[], key: (x: T) => string) => {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
};
const fmtCounts = (c: Record<string, number>) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

describe(`DR-unreadable window (${reliabilityLevel()})`, () => {
  it.each(cases)(
    '$dups duplicate(s), $rotations rotations: lockstep 0 failed unwraps; naive primary-first fails',
    async ({ dups, rotations }) => {
      // ── lockstep: the real rotation service, stage → verify → promote ──
      const lsGroup = await createStackGroup(s, `dr-lockstep-${dups}`, dups);
      const svc = s.service();
      const lsWorkload = startDrWorkload({ kp: app, group: lsGroup });
      const lsOrigin = performance.now();
      const lsRotationMs: number[] = [];
      const lsStatuses: string[] = [];
      let ls: DrWorkloadStats;
      try {
        for (let i = 0; i < rotations; i++) {
          s.clock.advance(HOUR + 1_000); // the 1 h rule
          const t0 = performance.now();
          const { runId } = await svc.rotateNow(lsGroup.id, { trigger: { kind: 'operator', by: 'dr-window' } });
          const run = await driveRun(s, svc, runId);
          lsRotationMs.push(performance.now() - t0);
          lsStatuses.push(run.status);
          await lsWorkload.settle(); // the workload has wrapped (and unwrapped) under the promoted generation
        }
      } finally {
        ls = await lsWorkload.stop();
      }

      // ── naive primary-first baseline on its own group, same stack, same workload ──
      const nvGroup = await createStackGroup(s, `dr-naive-${dups}`, dups);
      const nvWorkload = startDrWorkload({ kp: app, group: nvGroup });
      const nvOrigin = performance.now();
      const windowsMs: number[] = [];
      let nv: DrWorkloadStats;
      try {
        for (let i = 0; i < rotations; i++) {
          s.clock.advance(HOUR + 1_000);
          const r = await naivePrimaryFirstRotation({
            kp: s.kp,
            group: nvGroup,
            pauseBetweenMembersMs: NAIVE_PAUSE_MS,
          });
          windowsMs.push(r.windowMs);
          await nvWorkload.settle();
        }
      } finally {
        nv = await nvWorkload.stop();
      }

      // ── report ──
      const naiveLine =
        `naive primary-first: ${nv.unwrapFailures + nv.mismatches}/${nv.unwraps} unwraps failed ` +
        `(${pct(nv.unwrapFailures + nv.mismatches, nv.unwraps)}%; window primary→last duplicate median ` +
        `${Math.round(median(windowsMs))} ms, max ${Math.round(Math.max(...windowsMs))} ms)`;
      const lockstepLine =
        `lockstep: ${ls.unwrapFailures + ls.mismatches}/${ls.unwraps} unwraps failed, ${ls.wrapFailures}/` +
        `${ls.wraps + ls.wrapFailures} wraps failed (${ls.olderVersionUnwraps} unwraps served by a duplicate staged ` +
        `ahead of the primary)`;
      const setup =
        `${rotations} rotations, ${dups} duplicate(s), emulator latency ${LATENCY.latencyMs}+U(0,${LATENCY.latencyJitterMs}) ms/call, ` +
        `workload 2 loops wrap@primary→unwrap@every duplicate`;
      const lockstep = recordScenario({
        scenario: `DR window: lockstep rotation (${dups} duplicate${dups > 1 ? 's' : ''})`,
        area: 'dr-window',
        runs: rotations,
        violations: ls.failures,
        convergeMs: { median: median(lsRotationMs), max: Math.max(...lsRotationMs) },
        notes:
          `${lockstepLine}; ${naiveLine}. ${setup}; converge = wall time of one lockstep rotation ` +
          `(rotateNow → completed), DR window 0 by construction (primary promoted last)`,
        examples: ls.failureLog.slice(0, 5).map((f) => describeFailure(f, lsOrigin)),
      });
      const naiveFailed = nv.failureLog.filter((f) => f.op === 'unwrap');
      const dupLabel = new Map(
        nvGroup.members.filter((m) => m.role === 'duplicate').map((m, i) => [m.crn as string, `d${i + 1} ${m.region}`]),
      );
      recordScenario({
        scenario: `DR window: naive primary-first baseline (${dups} duplicate${dups > 1 ? 's' : ''})`,
        area: 'dr-window',
        runs: rotations,
        violations: 0,
        convergeMs: { median: median(windowsMs), max: Math.max(...windowsMs) },
        notes:
          `BASELINE, not lockstep: violations 0 by definition, its failures are the figure — ${naiveLine}; ` +
          `by duplicate: ${fmtCounts(countBy(naiveFailed, (f) => dupLabel.get(f.crn) ?? f.region))}; reasons: ` +
          `${fmtCounts(countBy(nv.failureLog, (f) => f.reason))}; converge = the DR-unreadable window (wall, ` +
          `${NAIVE_PAUSE_MS} ms pause between members). Same run: ${lockstepLine}`,
      });

      // ── the workload really ran across every rotation (otherwise 0 would mean nothing) ──
      expect(lsStatuses).toEqual(Array(rotations).fill('completed'));
      expect(ls.unwraps).toBeGreaterThan(0);
      expect(ls.wrappedVersions.length).toBeGreaterThanOrEqual(rotations + 1);
      // …including while duplicates held the new material and the primary still wrapped under the old one
      expect(ls.olderVersionUnwraps).toBeGreaterThan(0);
      expect(nv.wrappedVersions.length).toBeGreaterThanOrEqual(rotations + 1);
      // ── the naive script opens the window and the workload sees it: failures, all DR unwraps at duplicates ──
      expect(nv.failures, 'the workload did not detect the naive window').toBeGreaterThan(0);
      const notTheWindow = nv.failureLog.filter(
        (f) => !(f.op === 'unwrap' && f.role === 'duplicate' && f.reason.startsWith('MATERIAL_MISMATCH')),
      );
      expect(notTheWindow.map((f) => describeFailure(f, nvOrigin))).toEqual([]);
      // ── lockstep: not one failed wrap or unwrap ──
      expect(lockstep.violations, lockstep.examples?.join('\n')).toBe(0);
    },
    TIMEOUT_MS,
  );
});
