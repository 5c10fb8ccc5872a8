import { describe, expect, it } from 'vitest';
import { AppError, type RunId } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { createFakeGroup, fakeWorld, instanceOf } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;

describe('verification against Key Protect', () => {
  it.each([
    { state: 2 as const, word: 'suspended' },
    { state: 3 as const, word: 'deactivated' },
    { state: 5 as const, word: 'destroyed' },
  ])('a $word member puts the group in degraded with the reason and a notification', async ({ state, word }) => {
    // Arrange
    const w = fakeWorld();
    const g = await createFakeGroup(w, `state-${state}`, 1);
    w.kp.keys.get(g.members[1]!.keyId)!.state = state;
    // Act
    const v = await w.service.verify(g.id, { trigger: 'operator:test', probes: false });
    // Assert
    expect(v).toMatchObject({ ok: false, result: 'problems', status: 'degraded' });
    expect(v.healRunId).toBeUndefined();
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after.status).toBe('degraded');
    expect(after.statusReason).toContain(`is ${word}`);
    expect(after.statusReason).toContain(g.members[1]!.crn);
    expect(w.notes.map((n) => n.type)).toContain('com.ibm.lockstep.group.degraded');
    if (state === 5) return;
    // Key Protect reports it active again: the next verification clears what the last one found
    w.kp.keys.get(g.members[1]!.keyId)!.state = 1;
    const again = await w.service.verify(g.id, { trigger: 'operator:test', probes: false });
    expect(again).toMatchObject({ ok: true, status: 'healthy' });
    expect((await w.stores.groups.get(g.id)).value.statusReason).toBeUndefined();
  });

  it('notifies once per new finding, not on every verification that finds the same', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'once', 1);
    w.kp.keys.get(g.members[0]!.keyId)!.state = 2;
    await w.service.verify(g.id, { trigger: 'tick:a', probes: false });
    await w.service.verify(g.id, { trigger: 'alert:b', probes: false });
    expect(w.notes.filter((n) => n.type === 'com.ibm.lockstep.group.degraded')).toHaveLength(1);
  });

  it('does not mistake a rotate the running saga sent but has not recorded yet for drift', async () => {
    // Arrange: a run claimed; its rotate of the duplicate reached Key Protect, the outcome is not saved yet
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'inflight', 1);
    w.clock.advance(HOUR + 1000);
    const { runId } = await w.service.rotateNow(g.id, { trigger: { kind: 'operator', by: 't' } });
    const cur = await w.stores.runs.get(runId as RunId);
    const run = structuredClone(cur.value) as unknown as RotationRun;
    const dup = run.members.find((m) => m.role === 'duplicate')!;
    dup.calls = [{ action: 'kms.secrets.rotate', correlationId: 'c0ffee00-0000-4000-8000-000000000000', atMs: 1 }];
    await w.stores.runs.save(run as never, cur.rev);
    w.kp.foreignRotate(g.members[1]!.keyId); // stands in for the run's own rotate
    // Act
    const v = await w.service.verify(g.id, { trigger: 'alert:x', probes: false });
    // Assert
    expect(v.result).toBe('incomplete');
    expect((await w.stores.groups.get(g.id)).value.status).not.toBe('diverged');
  });

  it('keeps a requested verification when Key Protect could not be read, and answers it once it can', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'outage', 1);
    await w.stores.groups.mutate(g.id, (x) => ({ ...x, verificationRequestedAtMs: w.clock.nowMs() }));
    w.kp.fault = (op) =>
      op === 'getKey'
        ? { when: 'before', error: new AppError('UPSTREAM_UNAVAILABLE', 'down', { retryable: true }) }
        : undefined;
    const down = await w.service.verify(g.id, { trigger: 'tick:t', probes: false });
    expect(down.result).toBe('incomplete');
    expect((await w.stores.groups.get(g.id)).value).toMatchObject({
      status: 'healthy',
      verificationRequestedAtMs: w.clock.nowMs(),
    });
    w.kp.fault = () => undefined;
    expect((await w.service.verify(g.id, { trigger: 'tick:t', probes: false })).result).toBe('ok');
    expect((await w.stores.groups.get(g.id)).value.verificationRequestedAtMs).toBeUndefined();
  });

  it('keeps a status it did not set: a clean verification does not clear a run’s divergence', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'runs-own', 1);
    await w.stores.groups.mutate(g.id, (x) => ({ ...x, status: 'diverged', statusReason: 'run r failed its proof' }));
    const v = await w.service.verify(g.id, { trigger: 'operator:test', probes: false });
    expect(v.result).toBe('ok');
    expect((await w.stores.groups.get(g.id)).value).toMatchObject({ status: 'diverged' });
  });

  it('a member the lineage records no version for is drift', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'unrecorded', 1);
    expect((await w.service.verify(g.id, { trigger: 'operator:test', probes: false })).ok).toBe(true);
    // a member appears in the group that no generation recorded (e.g. written by hand)
    const extra = w.kp.seedKey({ region: 'eu-gb', instanceId: instanceOf(3), material: Buffer.alloc(32, 7) });
    await w.stores.groups.mutate(g.id, (x) => ({
      ...x,
      members: [
        ...x.members,
        { role: 'duplicate', region: 'eu-gb' as never, instanceId: instanceOf(3), keyId: extra.id, crn: extra.crn },
      ],
    }));
    const v = await w.service.verify(g.id, { trigger: 'operator:test', probes: false });
    const m = v.members.find((x) => x.crn === extra.crn)!;
    expect(m).toMatchObject({ ok: false, currentVersionId: extra.currentVersionId });
    expect(m.expectedVersionId).toBeUndefined();
    expect(v.problems.join()).toMatch(/the lineage records no version for it/);
    expect(v).toMatchObject({ result: 'problems', status: 'diverged' });
  });
});
