/**
 * `group create` never leaves orphan keys (issue 14). The create run persists its intent (placements, key names and
 * aliases unique to the run) before any key exists; a resumed create finds by alias what a crashed worker made and
 * adopts it. Over HTTP: the real Key Protect client against the emulator, the real store adapter. Keys are counted
 * from the emulator's Activity Tracker events (`kms.secrets.create`, success), per instance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyProtectPort } from '../../../src/app/ports.js';
import { AppError, type Group, type RegionId } from '../../../src/core/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { driveRun, type LocalStack, startLocalStack } from '../../support/localStack.js';

let s: LocalStack;
beforeAll(async () => {
  s = await startLocalStack({ regions: ['us-south', 'us-east', 'eu-de'], instancesPerRegion: 3 });
});
afterAll(async () => {
  await s?.close();
});

const input = (id: string, i: number) => ({
  id,
  name: `group ${id}`,
  schedule: { intervalMs: 90 * 24 * 3_600_000 },
  primary: { region: 'us-south' as RegionId, instanceId: s.instance('us-south', i) },
  duplicates: [
    { region: 'us-east' as RegionId, instanceId: s.instance('us-east', i) },
    { region: 'eu-de' as RegionId, instanceId: s.instance('eu-de', i) },
  ],
  trigger: { kind: 'operator' as const, by: 'create-crash' },
});

/** Keys created successfully in an instance (the emulator's Activity Tracker events). */
function keysCreatedIn(instanceId: string): number {
  return s.stack.kp
    .events({ action: 'kms.secrets.create' })
    .filter((e) => e.outcome === 'success' && e.target.id.includes(instanceId)).length;
}

async function expectOneKeyPerMember(group: Group) {
  for (const m of group.members) {
    // the primary's instance also holds the escrow key
    expect(keysCreatedIn(m.instanceId)).toBe(m.role === 'primary' ? 2 : 1);
  }
  const v = await s.service().verify(group.id);
  expect(v.ok).toBe(true);
}

describe('group create resumes without orphan keys', () => {
  it('a crash after every key exists, before the group is written: the resumed create adopts the keys', async () => {
    // Arrange: the worker dies right after persisting the primary's key (every key exists; no group document yet)
    const crash = s.service({
      afterPersist: (run: RotationRun) => {
        if (run.kind === 'create' && run.members.every((m) => m.progress === 'staged')) throw new Error('SIGKILL');
      },
    });
    await expect(crash.createGroup(input('orphan-late', 0))).rejects.toThrow('SIGKILL');
    expect(await s.stores.groups.find('orphan-late' as never)).toBeUndefined();
    const run = (await s.stores.runs.get('run-orphan-late-create' as never)).value as RotationRun;
    expect(run.members.every((m) => m.keyId !== undefined)).toBe(true); // the run names every key it made
    // Act: the lease expires; the same create again
    s.clock.advance(150_000);
    const { group } = await s.service().createGroup(input('orphan-late', 0));
    // Assert: the run's keys became the group, nothing was created twice
    expect(group.members.map((m) => m.keyId).sort()).toEqual(run.members.map((m) => m.keyId).sort());
    expect(group.escrow.keyId).toBe(run.escrowKey?.keyId);
    await expectOneKeyPerMember(group);
  });

  it('a key made whose answer never reached the worker: the resumed create finds it by alias', async () => {
    // Arrange: Key Protect creates the primary's key, then the worker loses the answer (and dies)
    const base = s.kp;
    const lossy: KeyProtectPort = {
      ...base,
      findKeyByAlias: (...a) => base.findKeyByAlias(...a),
      async createImportedKey(i, o) {
        const k = await base.createImportedKey(i, o);
        if (i.instanceId === s.instance('us-south', 1)) throw new Error('SIGKILL after the key was created');
        return k;
      },
    };
    const crash = s.service({ kp: lossy });
    await expect(crash.createGroup(input('orphan-lost', 1))).rejects.toBeInstanceOf(AppError);
    const before = (await s.stores.runs.get('run-orphan-lost-create' as never)).value as RotationRun;
    expect(before.members.find((m) => m.role === 'primary')?.keyId).toBeUndefined();
    expect(before.members.find((m) => m.role === 'primary')?.calls?.[0]?.action).toBe('kms.secrets.create');
    // Act: a healthy worker resumes the run (after its backoff)
    s.clock.advance(150_000);
    const done = await driveRun(s, s.service(), before.id);
    // Assert
    expect(done.status).toBe('completed');
    const primary = done.members.find((m) => m.role === 'primary')!;
    expect(primary.stagedVia).toBe('found');
    const group = (await s.stores.groups.get('orphan-lost' as never)).value;
    await expectOneKeyPerMember(group);
  });

  it('a second create of a group being created is refused; the first one keeps its keys', async () => {
    const crash = s.service({
      afterPersist: (run: RotationRun) => {
        if (run.kind === 'create' && run.fingerprint) throw new Error('SIGKILL');
      },
    });
    await expect(crash.createGroup(input('orphan-twice', 2))).rejects.toThrow('SIGKILL');
    // a different spec under the same id does not start a second run
    const other = { ...input('orphan-twice', 2), name: 'another' };
    s.clock.advance(150_000);
    const { group } = await s.service().createGroup(other);
    expect(group.name).toBe('group orphan-twice'); // the persisted intent wins
    await expectOneKeyPerMember(group);
    await expect(s.service().createGroup(input('orphan-twice', 2))).rejects.toMatchObject({ code: 'GROUP_EXISTS' });
  });
});
