import { describe, expect, it } from 'vitest';
import { runTick, withRequestRateBudget } from '../../../src/app/tick.js';
import type { Group, GroupId, Schedule } from '../../../src/core/index.js';
import { KeyMaterial } from '../../../src/core/index.js';
import { createFakeGroup, type FakeWorld, fakeWorld } from '../../support/fakeWorld.js';

const HOUR = 3_600_000;

async function setSchedule(w: FakeWorld, id: string, schedule: Schedule, extra: Partial<Group> = {}) {
  await w.stores.groups.mutate(id as GroupId, (g) => ({ ...g, schedule, ...extra }));
}

function tickDeps(w: FakeWorld, config = {}) {
  return { service: w.service, stores: w.stores, clock: w.clock, logger: w.log.logger, config };
}

const deadline = (w: FakeWorld, ms = 120_000) => w.clock.nowMs() + ms;

describe('runTick', () => {
  it('verifies groups whose verifyDueAtMs passed, at most maxVerificationsPerTick, without moving their next rotation', async () => {
    // Arrange: three groups; two due for verification (oldest first), one not yet
    const w = fakeWorld();
    const ids = ['pv-a', 'pv-b', 'pv-c'];
    for (const id of ids) await createFakeGroup(w, id, 1);
    const now = w.clock.nowMs();
    const nextDue = now + 90 * 24 * HOUR;
    await setSchedule(w, 'pv-a', { intervalMs: 90 * 24 * HOUR }, { verifyDueAtMs: now - 2_000, nextDueAtMs: nextDue });
    await setSchedule(w, 'pv-b', { intervalMs: 90 * 24 * HOUR }, { verifyDueAtMs: now - 1_000, nextDueAtMs: nextDue });
    await setSchedule(w, 'pv-c', { intervalMs: 90 * 24 * HOUR }, { verifyDueAtMs: now + HOUR, nextDueAtMs: nextDue });
    // Act
    const s = await runTick(tickDeps(w, { maxVerificationsPerTick: 1 }), { deadlineAtMs: deadline(w), holder: 'pv' });
    // Assert: only the oldest due one, labelled periodic; its next verification comes round; rotation untouched
    expect(s).toMatchObject({ verified: 1, started: 0 });
    const [a, b, c] = await Promise.all(ids.map(async (id) => (await w.stores.groups.get(id as GroupId)).value));
    expect(a!.lastVerification).toMatchObject({ result: 'ok' });
    expect(a!.lastVerification!.trigger).toMatch(/^periodic:tick:pv_/);
    expect(a!.verifyDueAtMs).toBeGreaterThan(now);
    expect(a!.nextDueAtMs).toBe(nextDue);
    expect(b!.lastVerification).toBeUndefined();
    expect(c!.lastVerification).toBeUndefined();
    // the next tick takes the next one
    expect((await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'pv2' })).verified).toBe(1);
    expect((await w.stores.groups.get('pv-b' as GroupId)).value.lastVerification).toBeDefined();
  });

  it('starts a due group and completes its rotation in one tick', async () => {
    // Arrange: interval of 2 h, last rotation (creation) 3 h ago
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'due-one', 2);
    await setSchedule(w, g.id, { intervalMs: 2 * HOUR }, { nextDueAtMs: w.clock.nowMs() + 2 * HOUR });
    w.clock.advance(3 * HOUR);
    // Act
    const s = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'tick-a', triggerId: 'ping-1' });
    // Assert
    expect(s).toMatchObject({ started: 1, completed: 1, degraded: 0, failed: 0, resumed: 0 });
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after.currentGeneration).toBe(2);
    expect(after.status).toBe('healthy');
    const runs = await w.stores.runs.listByGroup(g.id, 5);
    expect((runs[0] as unknown as { trigger: { kind: string; by: string } }).trigger).toMatchObject({
      kind: 'schedule',
      by: 'ping-1',
    });
    expect(w.log.lines.some((l) => l.includes('tick.summary'))).toBe(true);
  });

  it('re-claims a due group whose claim names a run that was never written (after a grace period)', async () => {
    // Arrange: the store failed between rotateNow's claim (group.activeRunId) and its run document
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'stranded', 1);
    await setSchedule(w, g.id, { intervalMs: 2 * HOUR }, { nextDueAtMs: w.clock.nowMs() + 2 * HOUR });
    w.clock.advance(3 * HOUR);
    await w.stores.groups.mutate(g.id, (cur) => ({
      ...cur,
      status: 'rotating',
      activeRunId: 'run-stranded-g2-00000000' as Group['activeRunId'],
      updatedAtMs: w.clock.nowMs(),
    }));
    // Act 1: within the grace period the claim may still be in flight: left alone
    const early = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'tick-a' });
    expect(early).toMatchObject({ started: 0, completed: 0 });
    // Act 2: a minute later the group is idle again and rotates
    w.clock.advance(61_000);
    const later = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'tick-b' });
    // Assert
    expect(later).toMatchObject({ started: 1, completed: 1 });
    const after = (await w.stores.groups.get(g.id)).value;
    expect(after).toMatchObject({ currentGeneration: 2, status: 'healthy' });
    expect(after.activeRunId).toBeUndefined();
  });

  it('leaves groups that are not due alone', async () => {
    const w = fakeWorld();
    await createFakeGroup(w, 'not-due', 1);
    w.clock.advance(HOUR);
    const s = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'tick-a' });
    expect(s).toMatchObject({ started: 0, completed: 0, deferred: [] });
  });

  it('honours a cron in a time zone and a daily window, rescheduling to the next opening', async () => {
    // Arrange: 03:00 Europe/Berlin daily (02:00 UTC in November), window 02:30–04:00 Berlin
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'berlin', 1);
    const created = w.clock.nowMs(); // 2026-11-01T08:00Z
    await setSchedule(
      w,
      g.id,
      { cron: '0 3 * * *', timeZone: 'Europe/Berlin', window: { start: '02:30', end: '04:00' } },
      { nextDueAtMs: created },
    );
    // Act 1: 2026-11-02T01:45Z = 02:45 Berlin: inside the window, but the cron has not fired since creation
    w.clock.set(Date.UTC(2026, 10, 2, 1, 45));
    const early = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 't' });
    // Assert 1: not started; next check moved to 03:00 Berlin = 02:00Z
    expect(early.started).toBe(0);
    expect(early.rescheduled).toBe(1);
    expect((await w.stores.groups.get(g.id)).value.nextDueAtMs).toBe(Date.UTC(2026, 10, 2, 2, 0));
    // Act 2: 02:10Z = 03:10 Berlin: due
    w.clock.set(Date.UTC(2026, 10, 2, 2, 10));
    const due = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 't' });
    expect(due).toMatchObject({ started: 1, completed: 1 });
  });

  it('does not start a due group outside its window, and moves its next check to the opening', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'windowed', 1);
    await setSchedule(
      w,
      g.id,
      { intervalMs: HOUR, window: { start: '22:00', end: '23:00' } },
      { nextDueAtMs: w.clock.nowMs() },
    );
    w.clock.advance(2 * HOUR); // 10:00Z, window closed
    const s = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 't' });
    expect(s.started).toBe(0);
    expect((await w.stores.groups.get(g.id)).value.nextDueAtMs).toBe(Date.UTC(2026, 10, 1, 22, 0));
  });

  it('stops claiming work near the deadline and defers everything with reason "deadline"', async () => {
    const w = fakeWorld();
    const a = await createFakeGroup(w, 'late-a', 1);
    const b = await createFakeGroup(w, 'late-b', 1);
    for (const g of [a, b]) await setSchedule(w, g.id, { intervalMs: HOUR }, { nextDueAtMs: w.clock.nowMs() });
    w.clock.advance(2 * HOUR);
    // 15 s left, margin 20 s: nothing may be claimed
    const s = await runTick(tickDeps(w), { deadlineAtMs: deadline(w, 15_000), holder: 't' });
    expect(s.started).toBe(0);
    expect(s.deferred.map((d) => d.reason)).toEqual(['deadline', 'deadline']);
    expect((await w.stores.groups.get(a.id)).value.currentGeneration).toBe(1);
  });

  it('resumes an unfinished run left by a crashed worker', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'crashy', 2);
    w.clock.advance(HOUR + 1000);
    const crashing = w.serviceWith((_run, step) => {
      if (step === 'stage') throw new Error('simulated crash');
    });
    const { runId } = await crashing.rotateNow(g.id, { trigger: { kind: 'operator', by: 't' } });
    await expect(crashing.advanceRun(runId, { deadlineAtMs: deadline(w), holder: 'dead-worker' })).rejects.toThrow(
      'simulated crash',
    );
    w.clock.advance(5 * 60_000); // the dead worker's group lease expires
    const s = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'tick-b' });
    expect(s).toMatchObject({ resumed: 1, completed: 1, started: 0 });
    expect((await w.service.getRun(runId)).status).toBe('completed');
  });

  it('defers groups over the per-instance request budget', async () => {
    const w = fakeWorld();
    const a = await createFakeGroup(w, 'budget-a', 1);
    const b = await createFakeGroup(w, 'budget-b', 1); // same instances as a
    for (const g of [a, b]) await setSchedule(w, g.id, { intervalMs: HOUR }, { nextDueAtMs: w.clock.nowMs() });
    w.clock.advance(2 * HOUR);
    const s = await runTick(tickDeps(w, { requestBudgetPerInstance: 12, requestsPerMember: 12, concurrency: 1 }), {
      deadlineAtMs: deadline(w),
      holder: 't',
    });
    expect(s.started).toBe(1);
    expect(s.deferred).toEqual([expect.objectContaining({ reason: 'rate-budget' })]);
  });

  it('lets two concurrent ticks split the fleet: every due group is started exactly once', async () => {
    // Arrange: four due groups
    const w = fakeWorld();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const g = await createFakeGroup(w, `fleet-${i}`, 1);
      await setSchedule(w, g.id, { intervalMs: HOUR }, { nextDueAtMs: w.clock.nowMs() });
      ids.push(g.id);
    }
    w.clock.advance(2 * HOUR);
    // Act: two ticks at once
    const [s1, s2] = await Promise.all([
      runTick(tickDeps(w, { concurrency: 2 }), { deadlineAtMs: deadline(w), holder: 'tick-1' }),
      runTick(tickDeps(w, { concurrency: 2 }), { deadlineAtMs: deadline(w), holder: 'tick-2' }),
    ]);
    // Assert
    expect(s1.started + s2.started).toBe(4);
    expect(s1.completed + s2.completed).toBe(4);
    for (const id of ids) {
      const runs = await w.stores.runs.listByGroup(id as GroupId, 10);
      expect(runs.filter((r) => r.kind === 'rotation')).toHaveLength(1);
      expect((await w.stores.groups.get(id as GroupId)).value.currentGeneration).toBe(2);
    }
    const skipped = [...s1.deferred, ...s2.deferred].map((d) => d.reason);
    expect(skipped.every((r) => r === 'claimed-by-another-tick' || r === 'run-in-progress')).toBe(true);
  });

  it('gives every tick its own lease holder (a server nonce), whatever label the caller passes', async () => {
    const w = fakeWorld();
    const a = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'rotate-same-ce-id' });
    const b = await runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 'rotate-same-ce-id' });
    expect(a.holder).toMatch(/^rotate-same-ce-id~[0-9a-f-]{36}$/);
    expect(b.holder).not.toBe(a.holder);
  });

  it('refuses a trigger id that may not enter the signed history', async () => {
    const w = fakeWorld();
    await expect(
      runTick(tickDeps(w), { deadlineAtMs: deadline(w), holder: 't', triggerId: '=HYPERLINK("x")' }),
    ).rejects.toThrow(/triggerId must not start/);
  });

  it('rejects a tick without a deadline or holder', async () => {
    const w = fakeWorld();
    await expect(runTick(tickDeps(w), { deadlineAtMs: Number.NaN, holder: 't' })).rejects.toThrow(/deadlineAtMs/);
  });
});

describe('withRequestRateBudget', () => {
  it('spaces calls to one instance to the configured rate and leaves other instances alone', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'rate', 1);
    const waits: number[] = [];
    const kp = withRequestRateBudget(w.kp, {
      perSecond: 2,
      clock: w.clock,
      sleep: async (ms) => {
        waits.push(ms);
        w.clock.advance(ms);
      },
    });
    const [primary, dup] = g.members;
    for (let i = 0; i < 4; i++) await kp.getKey(primary!);
    await kp.getKey(dup!);
    expect(waits).toEqual([500, 500]);
  });

  it('counts a secure import as its three requests (import token POST + GET, then the rotate)', async () => {
    const w = fakeWorld();
    const g = await createFakeGroup(w, 'rate-import', 1);
    const waits: number[] = [];
    const kp = withRequestRateBudget(w.kp, {
      perSecond: 4,
      clock: w.clock,
      sleep: async (ms) => {
        waits.push(ms);
        w.clock.advance(ms);
      },
    });
    const primary = g.members[0]!;
    w.clock.advance(2 * 3_600_000); // past Key Protect's one-rotation-per-hour rule
    await kp.getKey(primary); // 3 of 4 tokens left
    await kp.rotateWithMaterial(primary, KeyMaterial.fromBytes(Buffer.alloc(32, 7))); // needs 3: no wait
    await kp.getKey(primary); // 0 left: waits 1/4 s
    expect(waits).toEqual([250]);
  });
});
