import { describe, expect, it } from 'vitest';
import { createFakeGroup, fakeWorld } from '../../support/fakeWorld.js';

describe('createGroup', () => {
  it('leaves the new group scheduled: nextDueAtMs is one interval after creation', async () => {
    // Arrange
    const w = fakeWorld();
    const createdAtMs = w.clock.nowMs();
    // Act
    const group = await createFakeGroup(w, 'scheduled', 1);
    // Assert (createFakeGroup uses a 30-day interval)
    const stored = (await w.stores.groups.get(group.id)).value;
    expect(stored.nextDueAtMs).toBeGreaterThanOrEqual(createdAtMs + 30 * 24 * 3_600_000);
    expect(stored.nextDueAtMs).toBeLessThanOrEqual(w.clock.nowMs() + 30 * 24 * 3_600_000);
  });
});
