import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Group } from '../../../src/core/index.js';
import { expectChain } from '../../support/assertions.js';
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
  // #6 recorded→release, #7 released→done. One rotation per crash point, an hour apart, on the same group.
  it.each([1, 2, 3, 4, 5, 6, 7])(
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

  it('no key material in any log line or stored document of these runs', async () => {
    const docs: string[] = [];
    for (const db of Object.values(s.stores.databases)) {
      docs.push(JSON.stringify((await s.stores.client.postAllDocs({ db, includeDocs: true })).result));
    }
    expect(leakedSecrets([...s.log.lines, ...docs].join('\n'), s.random.secrets)).toEqual([]);
  });
});
