/**
 * The operator's run actions over the fake world (fake Key Protect, in-memory stores, test clock): what each refuses
 * and why, with nothing changed by a refusal.
 */
import { describe, expect, it } from 'vitest';
import type { Trigger } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { createFakeGroup, fakeWorld } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;
const by: Trigger = { kind: 'operator', by: 'IBMid-operator' };

async function claimed(dups = 2) {
  // Arrange: a group, an hour later a claimed rotation (pending at generate)
  const w = fakeWorld();
  const group = await createFakeGroup(w, 'ops', dups);
  w.clock.advance(HOUR + 1);
  const { runId } = await w.service.rotateNow(group.id, { trigger: by });
  const doc = async () => (await w.stores.runs.get(runId)).value as RotationRun;
  return { w, group, runId, doc };
}

describe('operator run actions', () => {
  it('refuses bad triggers and reasons before reading anything', async () => {
    const { w, runId, doc } = await claimed();
    const before = JSON.stringify(await doc());
    for (const trigger of [
      { kind: 'operator', by: '' },
      { kind: 'operator', by: 'has space' },
      { kind: 'root', by: 'x' },
      { ...by, reason: '=HYPERLINK("x")' },
      { ...by, reason: 'a\nb' },
      { ...by, reason: 'x'.repeat(501) },
    ] as Trigger[]) {
      await expect(w.service.stopRun(runId, { trigger })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      await expect(w.service.retryRun(runId, { trigger })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    }
    await expect(w.service.stopRun('not a run id', { trigger: by })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
    expect(JSON.stringify(await doc())).toBe(before);
  });

  it('answers LEASE_HELD while a worker holds the group, and changes nothing', async () => {
    const { w, group, runId, doc } = await claimed();
    await w.stores.leases.acquire(`group:${group.id}`, 'busy-worker', 60_000, w.clock.nowMs());
    const before = JSON.stringify(await doc());
    await expect(w.service.stopRun(runId, { trigger: by })).rejects.toMatchObject({ code: 'LEASE_HELD' });
    await expect(w.service.retryRun(runId, { trigger: by })).rejects.toMatchObject({ code: 'LEASE_HELD' });
    expect(JSON.stringify(await doc())).toBe(before);
  });

  it('refuses to stop a create run, a finished run and a run past promotion', async () => {
    const { w, group, runId } = await claimed(1);
    const createRun = (await w.stores.runs.listByGroup(group.id, 10)).find((r) => r.kind === 'create')!;
    await expect(w.service.stopRun(createRun.id, { trigger: by })).rejects.toMatchObject({
      code: 'RUN_STATE_INVALID',
      message: expect.stringMatching(/can only finish/),
    });
    const done = await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 't' });
    expect(done.status).toBe('completed');
    await expect(w.service.stopRun(runId, { trigger: by })).rejects.toMatchObject({ code: 'RUN_STATE_INVALID' });
    await expect(w.service.retryRun(runId, { trigger: by })).rejects.toMatchObject({ code: 'RUN_STATE_INVALID' });
  });

  it('does not retry a stopped run once another run holds the group or its generation was recorded', async () => {
    const { w, group, runId } = await claimed(1);
    const stopped = await w.service.stopRun(runId, { trigger: { ...by, reason: 'freeze' } });
    expect(stopped).toMatchObject({
      status: 'stopped',
      groupStatus: 'healthy',
      stop: { staged: [], reason: 'freeze' },
    });
    // a new run takes the group, then records generation 2
    const next = await w.service.rotateNow(group.id, { trigger: by, force: true });
    await expect(w.service.retryRun(runId, { trigger: by })).rejects.toMatchObject({ code: 'RUN_IN_PROGRESS' });
    await w.service.advanceRun(next.runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 't' });
    await expect(w.service.retryRun(runId, { trigger: by })).rejects.toMatchObject({
      code: 'RUN_STATE_INVALID',
      message: expect.stringMatching(/superseded/),
    });
    // the stop is kept in the run's history
    const doc = (await w.stores.runs.get(runId)).value as RotationRun;
    expect(doc.transitions.at(-1)).toMatchObject({ status: 'stopped', note: 'stopped by operator:IBMid-operator' });
    expect(w.notes.some((n) => n.type === 'com.ibm.lockstep.rotation.stopped')).toBe(true);
  });
});
