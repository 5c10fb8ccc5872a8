import { describe, expect, it } from 'vitest';
import { runTick } from '../../../src/app/tick.js';
import { fakeWorld } from '../../support/fakeWorld.js';

describe('runTick with scheduled drills', () => {
  it('runs the due drills after the rotation work, before the claim deadline, and reports them', async () => {
    // Arrange
    const w = fakeWorld();
    const calls: { deadlineAtMs: number; holder: string; triggerId?: string }[] = [];
    const drills = {
      async runDue(o: { deadlineAtMs: number; holder: string; triggerId?: string }) {
        calls.push(o);
        return { ran: 2, failed: 1 };
      },
    };
    const deps = { service: w.service, stores: w.stores, clock: w.clock, logger: w.log.logger, drills };
    const deadlineAtMs = w.clock.nowMs() + 120_000;
    // Act
    const s = await runTick(deps, { deadlineAtMs, holder: 'tick-d', triggerId: 'ping-9' });
    // Assert: claims stop 20 s before the deadline, and so do drills
    expect(s.drills).toEqual({ ran: 2, failed: 1 });
    expect(calls).toEqual([{ deadlineAtMs: deadlineAtMs - 20_000, holder: 'tick-d', triggerId: 'ping-9' }]);
  });

  it('skips drills past the claim deadline, and a drill error never fails the tick', async () => {
    const w = fakeWorld();
    let called = 0;
    const failing = {
      async runDue() {
        called += 1;
        throw new Error('store down');
      },
    };
    const deps = { service: w.service, stores: w.stores, clock: w.clock, logger: w.log.logger, drills: failing };
    const late = await runTick(deps, { deadlineAtMs: w.clock.nowMs() + 10_000, holder: 'tick-e' });
    expect(late.drills).toBeUndefined();
    expect(called).toBe(0);
    const s = await runTick(deps, { deadlineAtMs: w.clock.nowMs() + 120_000, holder: 'tick-f' });
    expect(s.drills).toEqual({ ran: 0, failed: 0 });
    expect(w.log.lines.some((l) => l.includes('tick.drills-failed'))).toBe(true);
  });
});
