/**
 * `startRotation` (how the tick starts a rotation) over HTTP: the claim reads the members while it escrows the new
 * material and fetches the duplicates' import tokens under their instances' leases; the run is created with its plan
 * and its escrow, and the pass that follows starts at stage with both. Whatever the claim prepared and no pass takes
 * (a refusal, a group lease held elsewhere) is released: no token lease stays held, no material outlives the call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Group } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { expectChain } from '../../support/assertions.js';
import { createStackGroup, driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';
import { leakedSecrets } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;
const op = { kind: 'schedule' as const, by: 'start-rotation-test' };
let s: LocalStack;

beforeAll(async () => {
  s = await startLocalStack({ instancesPerRegion: 2 });
});
afterAll(async () => {
  await s?.close();
});

/** True when nobody holds the import-token lease of every duplicate's instance (a probe takes and frees each). */
async function tokenLeasesFree(group: Group): Promise<boolean> {
  for (const m of group.members.filter((x) => x.role === 'duplicate')) {
    const l = await s.stores.leases.acquire(`token:${m.region}:${m.instanceId}`, 'probe', 60_000, s.clock.nowMs());
    if (!l) return false;
    await s.stores.leases.release(l);
  }
  return true;
}

describe('startRotation: claim and first pass in one', () => {
  it('the run is created with its plan and its escrow: the pass saves nothing before the duplicates are staged', async () => {
    // Arrange
    const group = await createStackGroup(s, 'start-ahead', 3);
    s.clock.advance(HOUR + 1_000);
    const persisted: Array<{ step: string; escrowed: boolean }> = [];
    const svc = s.service({
      afterPersist: (run: RotationRun) => {
        persisted.push({ step: run.step, escrowed: run.escrow !== undefined });
      },
    });

    // Act
    const { runId, result } = await svc.startRotation(group.id, {
      trigger: op,
      deadlineAtMs: s.clock.nowMs() + HOUR,
      holder: 'tick-test',
    });

    // Assert: the first save of the pass is the duplicates' group commit (step verify), with the escrow already there
    expect(result.status).toBe('completed');
    expect(persisted[0]).toEqual({ step: 'verify', escrowed: true });
    expect(persisted.map((p) => p.step)).not.toContain('stage');
    const run = await svc.getRun(runId);
    expect(run.trigger).toMatchObject(op);
    await expectChain(s.stores, group, 2);
    expect((await svc.verify(group.id)).ok).toBe(true);
    expect(await tokenLeasesFree(group)).toBe(true);
    expect(leakedSecrets(s.log.lines.join('\n'), s.random.secrets)).toEqual([]);
  });

  it('a refused claim (the 1 h rule) leaves nothing: no run, the group free, every token lease released', async () => {
    // Arrange: a group rotated a moment ago
    const group = await createStackGroup(s, 'start-refused', 2);
    s.clock.advance(HOUR + 1_000);
    const svc = s.service();
    const first = await svc.startRotation(group.id, {
      trigger: op,
      deadlineAtMs: s.clock.nowMs() + HOUR,
      holder: 't1',
    });
    expect(first.result.status).toBe('completed');
    const runsBefore = await s.stores.runs.listByGroup(group.id, 50);

    // Act
    const refused = await svc
      .startRotation(group.id, { trigger: op, deadlineAtMs: s.clock.nowMs() + HOUR, holder: 't2' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    // Assert
    expect(refused).toMatchObject({ code: 'ROTATION_TOO_SOON' });
    expect(await s.stores.runs.listByGroup(group.id, 50)).toHaveLength(runsBefore.length);
    const after = (await s.stores.groups.get(group.id)).value;
    expect(after.activeRunId).toBeUndefined();
    expect(after.status).toBe('healthy');
    expect(await tokenLeasesFree(group)).toBe(true);
  });

  it('a group that is not healthy is claimed without work ahead: a refused claim costs only its reading', async () => {
    // Arrange: a degraded group, rotated a moment ago (the tick would retry it at every tick)
    const group = await createStackGroup(s, 'start-degraded', 2);
    s.clock.advance(HOUR + 1_000);
    await s.service().startRotation(group.id, { trigger: op, deadlineAtMs: s.clock.nowMs() + HOUR, holder: 't1' });
    await s.stores.groups.mutate(group.id, (g) => ({ ...g, status: 'degraded', statusReason: 'test' }));
    const calls: string[] = [];
    const kp = new Proxy(s.kp, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function'
          ? (...args: unknown[]) => {
              calls.push(String(prop));
              return v.apply(target, args);
            }
          : v;
      },
    });

    // Act
    const refused = await s
      .service({ kp })
      .startRotation(group.id, { trigger: op, deadlineAtMs: s.clock.nowMs() + HOUR, holder: 't2' })
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    // Assert: the members were read; no escrow wrap, no import token
    expect(refused).toMatchObject({ code: 'ROTATION_TOO_SOON' });
    expect(calls.filter((c) => c === 'getKey' || c === 'listVersions')).toHaveLength(6);
    expect(calls.filter((c) => c === 'wrap' || c === 'prepareImportToken')).toEqual([]);
  });

  it('a pass that cannot take the group lease hands nothing on: leases released; the next worker unwraps the escrow', async () => {
    // Arrange: another worker holds the group lease
    const group = await createStackGroup(s, 'start-held', 2);
    s.clock.advance(HOUR + 1_000);
    const svc = s.service();
    const other = await s.stores.leases.acquire(`group:${group.id}`, 'other-worker', 60_000, s.clock.nowMs());
    expect(other).toBeDefined();

    // Act
    const { runId, result } = await svc.startRotation(group.id, {
      trigger: op,
      deadlineAtMs: s.clock.nowMs() + HOUR,
      holder: 'tick-test',
    });
    const claimed = await svc.getRun(runId);
    const tokensFreeMeanwhile = await tokenLeasesFree(group);
    await s.stores.leases.release(other!);
    const run = await driveRun(s, svc, runId);

    // Assert: the run waited at stage with its escrow; another pass finished it with that material
    expect(result.stopped).toBe('lease-held');
    expect(claimed.step).toBe('stage');
    expect(claimed.escrow?.fingerprint).toBe(claimed.fingerprint);
    expect(tokensFreeMeanwhile).toBe(true);
    expect(run.status).toBe('completed');
    expect(run.fingerprint).toBe(claimed.fingerprint);
    await expectChain(s.stores, group, 2);
    expect((await svc.verify(group.id)).ok).toBe(true);
  });
});
