/**
 * Crash injection over HTTP: the runner is killed after each persisted step (in-process hook), and once as a real
 * child process killed with SIGKILL once its duplicates are staged (the stage step's group commit) and before the
 * primary is promoted. Resuming (another worker, after the dead one's leases expire)
 * completes with the same fingerprint, exactly one new version per member, and no lost material.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Group } from '../../../src/core/index.js';
import { expectChain } from '../../support/assertions.js';
import { bundleChild } from '../../support/bundleChild.js';
import { childEnv, phase } from '../../support/childProcess.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { leakedSecrets, SimulatedCrash } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;
const LEASE_EXPIRY_MS = 150_000;
const op = { kind: 'operator' as const, by: 'crash-test' };
let s: LocalStack;
let group: Group;
let generation = 1;
const matrix: string[] = [];

beforeAll(async () => {
  s = await startLocalStack({ regions: ['us-south', 'us-east', 'eu-de'], instancesPerRegion: 1 });
  group = await createStackGroup(s, 'crashy', 2);
});
afterAll(async () => {
  // The crash matrix, for the report.
  process.stderr.write(`crash matrix:\n${matrix.join('\n')}\n`);
  await s?.close();
});

async function expectLockstep(gens: number): Promise<void> {
  for (const m of group.members) expect(await s.kp.listVersions(m)).toHaveLength(gens);
  await expectChain(s.stores, group, gens);
  const v = await s.service().verify(group.id);
  expect(v.ok).toBe(true);
}

describe('crash injection over HTTP', () => {
  // Persists for 1 primary + 2 duplicates (the plan is recorded by rotateNow's claim): #1 escrowed→stage, #2 both
  // duplicates staged (one group commit)→verify, #3 verified→promote, #4 primary→prove, #5 proved→record,
  // #6 recorded and released→done (one save after the lineage append and the group update). One rotation per crash
  // point, an hour apart, on the same group.
  it.each([1, 2, 3, 4, 5, 6])(
    'killed after persist #%i, another worker resumes to the same end state',
    async (crashAt) => {
      s.clock.advance(HOUR + 1_000);
      const { runId } = await s.service().rotateNow(group.id, { trigger: op });
      generation += 1;
      let n = 0;
      let crashed: { step: string; fingerprint?: string } | undefined;
      const doomed = s.service({
        afterPersist: (run, step) => {
          if (++n === crashAt) {
            crashed = { step: `${step}/${run.status}`, ...(run.fingerprint ? { fingerprint: run.fingerprint } : {}) };
            throw new SimulatedCrash(step);
          }
        },
      });
      const err = await doomed.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'doomed' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SimulatedCrash);
      s.clock.advance(LEASE_EXPIRY_MS);
      const run = await driveRun(s, s.service(), runId);
      expect(run.status).toBe('completed');
      if (crashed?.fingerprint) expect(run.fingerprint).toBe(crashed.fingerprint);
      await expectLockstep(generation);
      matrix.push(`persist #${crashAt} (${crashed?.step}) → resumed: completed, fingerprint kept, 1 version/member`);
    },
  );

  it('a real child process SIGKILLed after staging, before promotion: resuming completes with the same material', async () => {
    // Each phase has its own bound (`phase`), so a failure says where it waited.
    // The child is an esbuild bundle (a plain node start; tsx would compile the sources at every start).
    const bundle = await phase(
      'bundle the child',
      30_000,
      bundleChild(fileURLToPath(new URL('../../support/rotationChild.ts', import.meta.url)), 'rotation-child'),
    );
    s.clock.advance(HOUR + 1_000);
    const { runId } = await s.service().rotateNow(group.id, { trigger: op });
    generation += 1;
    // This process plans and escrows (so the material is one this test knows), then "dies" before staging.
    const planner = s.service({
      afterPersist: (run) => {
        if (run.step === 'stage') throw new SimulatedCrash('stage');
      },
    });
    await planner.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'planner' }).catch(() => undefined);
    s.clock.advance(LEASE_EXPIRY_MS);
    const child: ChildProcess = spawn(process.execPath, [bundle.file], {
      env: { ...process.env, ...childEnv(s), LOCKSTEP_RUN_ID: runId, LOCKSTEP_HANG_AT_STEP: 'verify' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // registered at once: the exit can never be missed, whenever it happens
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    let out = '';
    let errText = '';
    let marked: () => void = () => undefined;
    const marker = new Promise<void>((resolve) => {
      marked = resolve;
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (/HANGING|FINISHED|FAILED/.test(out)) marked();
    });
    child.stderr!.on('data', (d: Buffer) => {
      errText += d.toString();
    });
    try {
      // the child starts, stages at least one duplicate and hangs (or ends early: that fails below, with its output)
      // With group commit the stage step persists its members' outcomes together, as the run moves to verify: the
      // child hangs at that persist, duplicates holding the new material and the primary not promoted.
      await phase('child commits the stage', 90_000, Promise.race([marker, exited]));
      expect(out, errText.slice(-2_000)).toContain('HANGING verify');
      const before = await s.service().getRun(runId);
      const stagedBefore = before.members.filter((m) => m.progress === 'staged').length;
      expect(stagedBefore).toBeGreaterThanOrEqual(1);
      expect(before.members.find((m) => m.role === 'primary')?.progress).not.toBe('staged');
      expect(child.exitCode).toBeNull(); // alive while it hangs: the kill below is what ends it
      expect(child.kill('SIGKILL')).toBe(true);
      const [code, signal] = await phase('child exits after SIGKILL', 10_000, exited);
      expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
      s.clock.advance(LEASE_EXPIRY_MS);
      const run = await phase('another worker resumes', 60_000, driveRun(s, s.service(), runId));
      expect(run.status).toBe('completed');
      expect(run.fingerprint).toBe(before.fingerprint);
      await expectLockstep(generation);
      expect(leakedSecrets(errText + out, s.random.secrets)).toEqual([]);
      matrix.push(
        `SIGKILL child after the stage commit (${stagedBefore} duplicate(s) staged, primary not promoted) → resumed: completed, fingerprint kept`,
      );
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      bundle.dispose();
    }
  }, 200_000); // the sum of the phase bounds, with room

  it('no key material in any log line or stored document of these runs', async () => {
    const docs: string[] = [];
    for (const db of Object.values(s.stores.databases)) {
      docs.push(JSON.stringify((await s.stores.client.postAllDocs({ db, includeDocs: true })).result));
    }
    expect(leakedSecrets([...s.log.lines, ...docs].join('\n'), s.random.secrets)).toEqual([]);
  });
});
