/**
 * Failback after a regional recovery (issue 14). A duplicate's Key Protect instance goes back to a restore point
 * (the emulator's admin API: a recovery that lost the writes after it), so the duplicate lacks the generations the
 * lineage says it holds. The scheduler's periodic verification finds it (no event), plans a catch-up run, and the
 * runner re-imports the missing generations from escrow, oldest first, one per allowed hour (Key Protect's rule, on
 * the emulator's clock), proving each with its lineage canary. Everything over HTTP: the real Key Protect client
 * against the emulator, the real store adapter against the embedded store. Invariants counted:
 * - before the catch-up the duplicate cannot unwrap the lost generations (the scenario really loses them);
 * - the periodic verification (not an event, not an operator) finds the member and names the generations;
 * - while the run waits for the 1 h rule, the group says which generation the member cannot unwrap yet, no rotation
 *   can start, and nothing is re-imported early;
 * - oldest first, one new version per missing generation, each proved; at the end every canary unwraps everywhere
 *   and a full verification (every generation on every member) is clean.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeEvidence } from '../../src/app/canary.js';
import { runTick } from '../../src/app/tick.js';
import type { Group, Member } from '../../src/core/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../support/localStack.js';
import { recordScenario, reliabilityLevel, scale } from './_lib/report.js';

const HOUR = 3_600_000;
const VERIFY_EVERY_MS = 30 * 60_000;
const cases = scale({
  bounded: [{ dups: 1, lost: 2 }],
  full: [
    { dups: 1, lost: 1 },
    { dups: 2, lost: 2 },
    { dups: 2, lost: 3 },
  ],
  soak: [
    { dups: 2, lost: 3 },
    { dups: 4, lost: 5 },
  ],
});

let s: LocalStack;

beforeAll(async () => {
  s = await startLocalStack({ config: { verifyIntervalMs: VERIFY_EVERY_MS } });
});
afterAll(async () => {
  await s?.close();
});

async function admin(path: string, body?: unknown): Promise<Response> {
  return fetch(`${s.stack.kp.adminUrl}${path}`, { method: 'POST', ...(body ? { body: JSON.stringify(body) } : {}) });
}

describe(`failback: catch-up after a regional recovery (${reliabilityLevel()})`, () => {
  it.each(cases)(
    '$dups duplicate(s), $lost generation(s) lost: found periodically, re-imported one per hour, proven',
    async ({ dups, lost }) => {
      let checks = 0;
      const violations: string[] = [];
      const check = (ok: boolean, what: string) => {
        checks += 1;
        if (!ok) violations.push(what);
      };
      const svc = s.service();
      const group = await createStackGroup(s, `failback-${dups}-${lost}`, dups);
      const dup = group.members.find((m) => m.role === 'duplicate') as Member;
      const tick = (label: string) =>
        runTick(
          { service: svc, stores: s.stores, clock: s.clock, logger: s.log.logger },
          { deadlineAtMs: s.clock.nowMs() + 10 * 60_000, holder: label },
        );

      // Arrange: a restore point of the duplicate's instance at generation 1, then `lost` rotations an hour apart.
      const snap = await admin('/__emulator/snapshots', { region: dup.region, instanceId: dup.instanceId });
      expect(snap.status).toBe(201);
      const { snapshotId } = (await snap.json()) as { snapshotId: string };
      for (let i = 0; i < lost; i++) {
        s.clock.advance(HOUR + 1_000);
        const { runId } = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'failback' } });
        expect((await driveRun(s, svc, runId)).status).toBe('completed');
      }
      const head = 1 + lost;
      const chain = await s.stores.lineage.chain(group.id);
      const canaryOf = (g: number) => chain[g - 1]!.verification.find((c) => c.ok)!;
      const holds = async (m: Member, g: number) => (await probeEvidence(s.kp, m, canaryOf(g))).holds;

      // Act 1: the regional recovery loses every write after the restore point.
      expect((await admin(`/__emulator/snapshots/${snapshotId}/restore`)).status).toBe(204);
      const recoveredAtMs = s.clock.nowMs();
      check(!(await holds(dup, head)), 'after the restore the duplicate still unwraps the newest generation');
      check(await holds(dup, 1), 'after the restore the duplicate lost generation 1 too');

      // Act 2: no event, no operator: the periodic verification of the tick finds it.
      s.clock.advance(VERIFY_EVERY_MS + 1_000);
      const t1 = await tick('failback-t1');
      const found = (await s.stores.groups.get(group.id)).value;
      check(
        t1.verified >= 1 && (found.lastVerification?.atMs ?? 0) >= recoveredAtMs,
        'the tick did not verify the group',
      );
      const gens = lost === 1 ? `generation ${head}` : `generations 2–${head}`;
      check(found.lastVerification?.trigger.startsWith('periodic:') === true, 'verification not labelled periodic');
      check(found.status === 'degraded', `group is ${found.status} after the finding, expected degraded`);
      check(found.statusReason?.includes(`cannot unwrap ${gens}`) === true, `reason does not name ${gens}`);
      const catchUp = (await s.stores.runs.listByGroup(group.id, 50)).find((r) => r.kind === 'catch-up') as
        | RotationRun
        | undefined;
      check(catchUp !== undefined && found.activeRunId === catchUp.id, 'no catch-up run claims the group');
      if (!catchUp) throw new Error(violations.join('; '));
      await expect(svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'failback' } })).rejects.toMatchObject({
        code: 'RUN_IN_PROGRESS',
      });
      checks += 1;

      // Act 3: ticks resume it; each generation waits for the member's hour.
      const reimportedAt: number[] = [];
      for (let g = 2; g <= head; g++) {
        const before = (await s.kp.listVersions(dup)).length;
        await tick(`failback-g${g}`);
        const run = (await s.stores.runs.get(catchUp.id)).value as RotationRun;
        const versions = await s.kp.listVersions(dup);
        check(
          versions.length === before + 1,
          `generation ${g}: ${versions.length - before} new version(s), expected 1`,
        );
        check(run.replay?.versions[String(g)] === versions[0]?.id, `generation ${g} not recorded as the new version`);
        check(await holds(dup, g), `generation ${g} does not unwrap at the duplicate after its re-import`);
        if (g < head) check(!(await holds(dup, head)), `generation ${head} unwraps before it was re-imported`);
        reimportedAt.push(versions[0]!.createdAtMs);
        if (g === head) {
          check(run.status === 'completed', `run is ${run.status} after the last generation`);
          break;
        }
        const g2 = (await s.stores.groups.get(group.id)).value;
        const next = g + 1 === head ? `generation ${head}` : `generations ${g + 1}–${head}`;
        check(g2.statusReason?.includes(`cannot unwrap ${next} yet`) === true, `reason does not name ${next}`);
        check(run.nextAttemptAtMs === versions[0]!.createdAtMs + HOUR, 'next re-import not planned at the 1 h rule');
        // a tick just before the hour re-imports nothing
        s.clock.advance(run.nextAttemptAtMs! - s.clock.nowMs() - 60_000);
        await tick(`failback-early-${g}`);
        check((await s.kp.listVersions(dup)).length === before + 1, `generation ${g + 1} re-imported before its hour`);
        s.clock.advance(61_000);
      }
      for (let i = 1; i < reimportedAt.length; i++) {
        check(reimportedAt[i]! - reimportedAt[i - 1]! >= HOUR, 'two re-imports less than an hour apart');
      }

      const convergedMs = s.clock.nowMs() - recoveredAtMs;
      // Assert: the group is back in lockstep, every generation on every member.
      const after = (await s.stores.groups.get(group.id)).value as Group;
      check(after.activeRunId === undefined, 'the catch-up run still claims the group');
      check(after.status === 'healthy', `group is ${after.status} after the catch-up`);
      const v = await svc.verify(group.id, { trigger: 'operator:failback', probes: true });
      check(v.ok, `verification after the catch-up: ${v.problems.join('; ')}`);
      check(v.probes.length === head * (dups + 1) && v.probes.every((p) => p.ok), 'a generation probe failed');
      s.clock.advance(HOUR + 1_000);
      const rotation = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'failback' } });
      check((await driveRun(s, svc, rotation.runId)).status === 'completed', 'the next rotation did not complete');

      const result = recordScenario({
        scenario: `failback catch-up (${dups} duplicate(s), ${lost} lost generation(s))`,
        area: 'failback',
        runs: checks,
        violations: violations.length,
        convergeMs: { median: convergedMs, max: convergedMs },
        notes:
          'emulator restore point → periodic verification (tick) finds the member → catch-up run re-imports the lost generations from escrow, oldest first, one per Key Protect hour, each proved by its canary; group degraded naming the missing generations meanwhile, no rotation can start; then clean full verification and a rotation (simulated time)',
        examples: violations.slice(0, 8),
      });
      expect(result.violations, result.examples?.join('\n')).toBe(0);
    },
    240_000,
  );
});
