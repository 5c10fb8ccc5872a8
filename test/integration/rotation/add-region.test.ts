/**
 * `region add` over HTTP, through the decider and the runner (issue 14): the new duplicate's key is created from
 * generation 1's escrow, every later generation is replayed one per Key Protect hour, each proved by its canary, and
 * the member joins the group; a worker that dies after creating the key is resumed without a second key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegionId } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';

const HOUR = 3_600_000;
let s: LocalStack;
beforeAll(async () => {
  s = await startLocalStack();
});
afterAll(async () => {
  await s?.close();
});

describe('region add', () => {
  it('replays every generation into the new duplicate (crash after its key exists), then it joins', async () => {
    // Arrange: generations 1–3
    const svc = s.service();
    const group = await createStackGroup(s, 'add-region', 1);
    for (let i = 0; i < 2; i++) {
      s.clock.advance(HOUR + 1_000);
      const { runId } = await svc.rotateNow(group.id, { trigger: { kind: 'operator', by: 'it' } });
      expect((await driveRun(s, svc, runId)).status).toBe('completed');
    }
    const at = { region: 'eu-de' as RegionId, instanceId: s.instance('eu-de', 1) };
    const { runId } = await svc.addRegion(group.id, { ...at, trigger: { kind: 'operator', by: 'it' } });
    // Act: the first worker dies right after the new key is persisted
    const crash = s.service({
      afterPersist: (run: RotationRun) => {
        if (run.members[0]?.keyId && run.replay?.nextGeneration === 1) throw new Error('SIGKILL');
      },
    });
    await expect(crash.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'dies' })).rejects.toThrow(
      'SIGKILL',
    );
    s.clock.advance(150_000); // its leases expire
    const first = await svc.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + HOUR, holder: 'w1' });
    // generation 1 (the key) and 2 (the first rotation after creation is free) now; 3 waits for the hour
    const mid = await svc.getRun(runId);
    expect(mid.replay?.nextGeneration).toBe(3);
    expect(first.nextAttemptAtMs).toBe(mid.members[0]!.rotatedAtMs! + HOUR);
    const done = await driveRun(s, svc, runId);
    // Assert
    expect(done.status).toBe('completed');
    const key = { ...at, keyId: done.members[0]!.keyId! };
    expect(await s.kp.listVersions(key)).toHaveLength(3); // one key, one version per generation
    const created = s.stack.kp
      .events({ action: 'kms.secrets.create' })
      .filter((e) => e.outcome === 'success' && e.target.id.includes(at.instanceId));
    expect(created).toHaveLength(1);
    const after = (await s.stores.groups.get(group.id)).value;
    expect(after.members).toHaveLength(3);
    const v = await svc.verify(group.id);
    expect(v.ok, v.problems.join('; ')).toBe(true);
    expect(v.probes.filter((p) => p.crn === done.members[0]!.crn).every((p) => p.ok)).toBe(true);
  });
});
