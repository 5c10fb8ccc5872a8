import { describe, expect, it } from 'vitest';
import { progressLines, type RunView } from '../../../src/local/dev/index.js';

const T0 = Date.UTC(2026, 10, 29, 4, 0, 0);

function run(over: Partial<RunView> = {}): RunView {
  return {
    id: 'run-demo-g2-abcdef12',
    groupId: 'demo',
    generation: 2,
    kind: 'rotation',
    status: 'running',
    step: 'stage',
    createdAtMs: T0,
    updatedAtMs: T0,
    trigger: { kind: 'operator', by: 'cli' },
    members: [
      {
        role: 'duplicate',
        region: 'us-east',
        instanceId: 'i1',
        slot: 'duplicate:us-east:i1',
        progress: 'pending',
        attempts: 0,
        evidence: [],
      },
      {
        role: 'primary',
        region: 'us-south',
        instanceId: 'i0',
        slot: 'primary:us-south:i0',
        progress: 'pending',
        attempts: 0,
        evidence: [],
      },
    ],
    canaries: [],
    deadlineAtMs: T0 + 1,
    startedAtMs: T0,
    notes: [],
    attempt: 0,
    transitions: [{ atMs: T0, from: 'plan', to: 'generate', status: 'running' }],
    ...over,
  } as unknown as RunView;
}

describe('progressLines', () => {
  it('prints each new transition once, then members as they are staged or blocked', () => {
    // Arrange
    const seen = new Map<string, string>();
    // Act
    const first = progressLines(run(), 0, seen);
    const later = run({
      transitions: [
        { atMs: T0, from: 'plan', to: 'generate', status: 'running' },
        { atMs: T0 + 1000, from: 'generate', to: 'stage', status: 'running' },
      ],
    } as Partial<RunView>);
    (later.members[0] as { progress: string; versionId?: string }).progress = 'staged';
    (later.members[0] as { versionId?: string }).versionId = '0123456789abcdef';
    (later.members[1] as { progress: string; lastError?: unknown }).progress = 'blocked';
    (later.members[1] as { lastError?: unknown }).lastError = {
      code: 'ROTATION_TOO_SOON',
      message: 'wait',
      retryable: true,
      atMs: T0,
    };
    const second = progressLines(later, 1, seen);
    const again = progressLines(later, 2, seen);
    // Assert
    expect(first).toEqual(['04:00:00  demo gen 2  plan → generate']);
    expect(second[0]).toBe('04:00:01  demo gen 2  generate → stage');
    expect(second[1]).toMatch(/duplicate us-east +holds gen 2 as version 01234567/);
    expect(second[2]).toMatch(/primary +us-south +blocked: ROTATION_TOO_SOON wait/);
    expect(again).toEqual([]);
  });
});
