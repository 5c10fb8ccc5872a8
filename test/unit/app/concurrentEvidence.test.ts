import { describe, expect, it } from 'vitest';
import type { KeyRef } from '../../../src/app/index.js';
import type { KeyMaterial } from '../../../src/core/index.js';
import { createFakeGroup, fakeWorld } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;

describe('runner and the events function writing the same run', () => {
  it('merges evidence attached while a member rotates, instead of losing the step', async () => {
    // Arrange: the events function attaches Activity Tracker evidence to the run document between the primary's
    // rotate and the runner's save of that outcome (what happens in the dev stack: the emulator's webhook is fast).
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'evidence-race', 2);
    const primary = group.members.find((m) => m.role === 'primary')!;
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: { kind: 'operator', by: 'test' } });
    const rotate = w.kp.rotateWithMaterial.bind(w.kp);
    let attached = 0;
    w.kp.rotateWithMaterial = async (ref: KeyRef, material: KeyMaterial | Promise<KeyMaterial>, opts) => {
      const rotated = await rotate(ref, material, opts);
      if (!rotated) return false;
      const crn = group.members.find((m) => m.keyId === ref.keyId)!.crn;
      await w.service.attachEvidence(
        { crn, runId },
        {
          eventId: `evt-${++attached}`,
          action: 'kms.secrets.rotate',
          eventTimeMs: w.clock.nowMs(),
          initiator: 'iam-lockstep',
          outcome: 'success',
        },
      );
      return true;
    };

    // Act: one advance, no clock movement
    const res = await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'w1' });

    // Assert: completed in one pass, the primary rotated by this worker (not "found" by a later one), evidence kept
    expect(res.status).toBe('completed');
    expect(attached).toBe(3);
    const run = await w.service.getRun(runId);
    const evidence = run.members.flatMap((m) => m.evidence.map((e) => e.eventId)).sort();
    expect(evidence).toEqual(['evt-1', 'evt-2', 'evt-3']);
    expect(w.kp.handles(primary.keyId)).toHaveLength(2);
    const history = JSON.stringify(run);
    expect(history).not.toContain('"via":"found"');
  });

  it('persists the rotate call (its correlation id) before Key Protect sees the rotate', async () => {
    // Arrange: generation 2 is claimed; every rotate that reaches Key Protect is checked against the stored run
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'evidence-attribution', 1);
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: { kind: 'operator', by: 'test' } });
    const rotate = w.kp.rotateWithMaterial.bind(w.kp);
    const seen: Array<{ correlationId: string | undefined; persisted: string[] }> = [];
    w.kp.rotateWithMaterial = async (ref: KeyRef, material: KeyMaterial | Promise<KeyMaterial>, opts) => {
      if (opts?.proceed && !(await opts.proceed)) return false;
      const run = await w.service.getRun(runId);
      const m = run.members.find((x) => x.keyId === ref.keyId)!;
      seen.push({ correlationId: opts?.correlationId, persisted: (m.calls ?? []).map((c) => c.correlationId) });
      return rotate(ref, material, { ...opts, proceed: Promise.resolve(true) });
    };

    // Act
    await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'h' });

    // Assert: an event for any of these rotates can be matched with the run the moment Key Protect emits it
    expect(seen).toHaveLength(2);
    for (const s of seen) expect(s.persisted).toContain(s.correlationId);
    expect((await w.service.getRun(runId)).status).toBe('completed');
  });
});
