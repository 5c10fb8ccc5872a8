import { describe, expect, it } from 'vitest';
import { escrowOf } from '../../../src/app/runDocument.js';
import { AppError, type KeyId } from '../../../src/core/index.js';
import { checkpointKeyPairFromSeed, checkpointKeyring, verifyEvidenceChain } from '../../../src/lineage/index.js';
import type { RotationRun } from '../../../src/rotation/index.js';
import { expectChain } from '../../support/assertions.js';
import { kpError } from '../../support/fakeKeyProtect.js';
import { createFakeGroup, type FakeWorld, fakeWorld, instanceOf } from '../../support/fakeWorld.js';
import { leakedSecrets, SimulatedCrash } from '../../support/rotationHarness.js';

const HOUR = 3_600_000;
const op = { kind: 'operator' as const, by: 'tester' };

/** Runs a run to its end, advancing the clock over waits; returns the final run. */
async function drive(w: FakeWorld, runId: string, maxPasses = 50): Promise<RotationRun> {
  for (let i = 0; i < maxPasses; i++) {
    const res = await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: `w${i}` });
    if (['completed', 'failed', 'diverged'].includes(res.status)) break;
    w.clock.set(Math.max(w.clock.nowMs() + 1_000, res.nextAttemptAtMs ?? w.clock.nowMs() + 150_000));
  }
  return w.service.getRun(runId);
}

/** An Activity Tracker event of lockstep's own rotate call, arriving now. */
const lateEvent = (w: FakeWorld, eventId: string) => ({
  eventId,
  action: 'kms.secrets.rotate',
  eventTimeMs: w.clock.nowMs(),
  initiator: 'lockstep',
  outcome: 'success',
});

async function rotated(w: FakeWorld, groupId: string) {
  w.clock.advance(HOUR + 1);
  const { runId } = await w.service.rotateNow(groupId, { trigger: op });
  return drive(w, runId);
}

/** Every member's newest version holds the same material, and each key has `versions` versions. */
function expectLockstep(w: FakeWorld, keyIds: string[], versions: number) {
  const handles = keyIds.map((k) => w.kp.handles(k));
  for (const h of handles) expect(h).toHaveLength(versions);
  for (let i = 0; i < versions; i++) expect(new Set(handles.map((h) => h[i])).size).toBe(1);
}

describe('rotation service (fake ports)', () => {
  it.each([1, 2, 4])(
    'creates a group and rotates it with %i duplicates: identical material, lineage chained',
    async (dups) => {
      // Arrange
      const w = fakeWorld();
      const group = await createFakeGroup(w, `happy-${dups}`, dups);
      // Act
      const run = await rotated(w, group.id);
      // Assert
      expect(run.status).toBe('completed');
      expectLockstep(
        w,
        group.members.map((m) => m.keyId),
        2,
      );
      const chain = await expectChain(w.stores, group, 2);
      const g2 = chain[1]!;
      expect(g2.fingerprint).toBe(run.fingerprint);
      expect(g2.status).toBe('complete');
      for (const m of group.members) {
        const versions = await w.kp.listVersions(m);
        expect(g2.members.find((x) => x.crn === m.crn)?.keyVersionId).toBe(versions[0]!.id);
        expect(chain[0]!.members.find((x) => x.crn === m.crn)?.keyVersionId).toBe(versions[1]!.id);
      }
      expect(g2.verification.length).toBe(2 + dups); // verify + prove (primary→all, each duplicate→primary)
      expect(JSON.stringify(g2)).not.toContain(run.escrow!.ciphertext);
      const after = (await w.stores.groups.get(group.id)).value;
      expect(after).toMatchObject({ status: 'healthy', currentGeneration: 2 });
      expect(after.activeRunId).toBeUndefined();
      expect(w.notes.map((n) => n.type)).toContain('com.ibm.lockstep.rotation.completed');
      expect(leakedSecrets(w.log.lines.join('\n') + w.stores.dump(), w.random.secrets)).toEqual([]);
    },
  );

  it("finds a generation's escrow through its lineage record, even when the runs-by-group query lags", async () => {
    // Arrange: generations 1 (create) and 2 (rotation); the group's run list answers nothing (an index behind a write)
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'escrow-by-record', 1);
    const run = await rotated(w, group.id);
    const chain = await expectChain(w.stores, group, 2);
    w.stores.runs.listByGroup = async () => [];

    // Act + Assert
    expect((await escrowOf(w.stores, group.id, 2))?.fingerprint).toBe(run.fingerprint);
    expect((await escrowOf(w.stores, group.id, 1))?.fingerprint).toBe(chain[0]!.fingerprint);
    expect(await escrowOf(w.stores, group.id, 3)).toBeUndefined(); // not recorded: the (empty) run list decides
  });

  it('refuses a second rotation within the hour and a second claim while a run is open', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'refuse', 1);
    await rotated(w, group.id);
    w.clock.advance(600_000); // ten minutes after that rotation
    await expect(w.service.rotateNow(group.id, { trigger: op })).rejects.toMatchObject({ code: 'ROTATION_TOO_SOON' });
    w.clock.advance(HOUR);
    await w.service.rotateNow(group.id, { trigger: op });
    await expect(w.service.rotateNow(group.id, { trigger: op })).rejects.toMatchObject({ code: 'RUN_IN_PROGRESS' });
    await expect(w.service.rotateNow('nope', { trigger: op })).rejects.toMatchObject({ code: 'GROUP_NOT_FOUND' });
    await expect(w.service.rotateNow(group.id, { trigger: { kind: 'x', by: '' } as never })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
  });

  it('plan is a dry run that reports when each member may rotate', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'plan', 2);
    const before = w.stores.dump();
    const p = await w.service.plan(group.id);
    expect(w.stores.dump()).toBe(before);
    expect(p.nextGeneration).toBe(2);
    expect(p.members).toHaveLength(3);
    expect(p.canStartNow).toBe(true); // never-rotated keys: the first rotation is free
    await rotated(w, group.id);
    const p2 = await w.service.plan(group.id);
    expect(p2.canStartNow).toBe(false);
    expect(p2.earliestStartAtMs).toBe(w.clock.nowMs() - (w.clock.nowMs() - p2.members[0]!.lastRotateAtMs!) + HOUR);
  });

  it('a member that already holds the run material is never rotated twice (ambiguous rotate)', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'ambig', 2);
    const dupKey = group.members[1]!.keyId;
    let fired = false;
    w.kp.fault = (o, ref) => {
      if (o === 'rotate' && ref.keyId === dupKey && !fired) {
        fired = true;
        return { when: 'after', error: kpError('UPSTREAM_UNAVAILABLE', { ambiguous: true }) };
      }
      return undefined;
    };
    const run = await rotated(w, group.id);
    expect(run.status).toBe('completed');
    expectLockstep(
      w,
      group.members.map((m) => m.keyId),
      2,
    );
    expect(w.kp.calls.filter((c) => c.op === 'rotate' && c.keyId === dupKey)).toHaveLength(1);
  });

  it('a token overwritten mid-run is retried once under the lease', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'nonce', 1);
    let n = 0;
    w.kp.fault = (o) =>
      o === 'rotate' && n++ === 0 ? { when: 'before', error: kpError('IMPORT_TOKEN_NONCE_MISMATCH') } : undefined;
    const run = await rotated(w, group.id);
    expect(run.status).toBe('completed');
    expectLockstep(
      w,
      group.members.map((m) => m.keyId),
      2,
    );
  });

  it('429 with Retry-After backs off for at least that long, then completes', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'throttle', 1);
    let n = 0;
    w.kp.fault = (o) =>
      o === 'rotate' && n++ === 0
        ? { when: 'before', error: kpError('UPSTREAM_RATE_LIMITED', { retryAfterMs: 900_000 }) }
        : undefined;
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: op });
    const t0 = w.clock.nowMs();
    const first = await w.service.advanceRun(runId, { deadlineAtMs: t0 + HOUR, holder: 'a' });
    expect(first.status).toBe('degraded');
    expect(first.nextAttemptAtMs).toBeGreaterThanOrEqual(t0 + 900_000);
    expect((await w.service.getRun(runId)).members[1]!.lastError?.code).toBe('UPSTREAM_RATE_LIMITED');
    const run = await drive(w, runId);
    expect(run.status).toBe('completed');
  });

  it('a duplicate that cannot be staged blocks promotion; the deadline fails the run; resume reuses the material', async () => {
    const w = fakeWorld({ runDeadlineMs: 2 * HOUR });
    const group = await createFakeGroup(w, 'blocked', 2);
    const down = group.members[2]!.instanceId;
    const primaryKey = group.members[0]!.keyId;
    w.kp.fault = (o, ref) =>
      ref.instanceId === down && o === 'rotate'
        ? { when: 'before', error: kpError('UPSTREAM_UNAVAILABLE', { ambiguous: false }) }
        : undefined;
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: op });
    const run = await drive(w, runId);
    expect(run.status).toBe('failed');
    expect(run.statusReason).toMatch(/primary was NOT rotated/);
    expect(run.statusReason).toContain(group.members[2]!.crn);
    expect(w.kp.handles(primaryKey)).toHaveLength(1); // primary untouched
    expect((await w.stores.groups.get(group.id)).value.status).toBe('failed');
    expect(w.notes.map((n) => n.type)).toEqual(
      expect.arrayContaining(['com.ibm.lockstep.rotation.degraded', 'com.ibm.lockstep.rotation.failed']),
    );
    await expect(w.service.rotateNow(group.id, { trigger: op })).rejects.toMatchObject({ code: 'RUN_IN_PROGRESS' });
    // the region comes back; the operator resumes
    w.kp.fault = () => undefined;
    await w.service.resume(runId, { trigger: op });
    const done = await drive(w, runId);
    expect(done.status).toBe('completed');
    expect(done.fingerprint).toBe(run.fingerprint);
    expectLockstep(
      w,
      group.members.map((m) => m.keyId),
      2,
    );
    await expectChain(w.stores, group, 2);
  });

  it('a foreign version found on a duplicate is noted, then the member is rotated when allowed', async () => {
    const w = fakeWorld({ stageConcurrency: 1 });
    const group = await createFakeGroup(w, 'foreign', 2);
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: op });
    // d1 is staged first (its material becomes the reference); someone rotates d2 out of band after the plan, just
    // before lockstep's rotate (refused: 1 h rule), so the versions are listed and the new one proved foreign.
    const d2 = group.members[2]!.keyId;
    let rotates = 0;
    w.kp.fault = (o, ref) => {
      if (o === 'rotate' && ref.keyId === d2 && ++rotates === 1) w.kp.foreignRotate(d2);
      return undefined;
    };
    const run = await drive(w, runId);
    expect(run.status).toBe('completed');
    expect(run.notes.join('\n')).toContain('foreign version');
    const record = await w.stores.lineage.get(group.id, 2);
    expect(record.notes?.join('\n')).toContain('exists only on this member');
    // d2: base, foreign, ours
    expect(w.kp.handles(d2)).toHaveLength(3);
    expect(w.kp.handles(d2)[0]).toBe(w.kp.handles(group.members[0]!.keyId)[0]);
  });

  it('an unprovable foreign version (nothing to compare with yet) is caught by verify: diverged, primary untouched', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'unproven', 2);
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: op });
    const [d1, d2] = [group.members[1]!.keyId, group.members[2]!.keyId];
    let rotates = 0;
    w.kp.fault = (o, ref) => {
      // d2 is rotated out of band as lockstep's rotate reaches it, before d1 is staged: lockstep's rotate is refused
      // (1 h rule), the versions are listed, and d2's foreign version cannot be proven yet
      if (o === 'rotate' && ref.keyId === d2 && ++rotates === 1) w.kp.foreignRotate(d2);
      return undefined;
    };
    const run = await drive(w, runId);
    expect(run.status).toBe('diverged');
    expect(run.statusReason).toContain('primary was NOT rotated');
    expect(w.kp.handles(group.members[0]!.keyId)).toHaveLength(1);
    expect(w.kp.handles(d1)).toHaveLength(2);
    expect(w.notes.map((n) => n.type)).toContain('com.ibm.lockstep.rotation.diverged');
    const g = (await w.stores.groups.get(group.id)).value;
    expect(g.status).toBe('diverged');
    expect(g.activeRunId).toBeUndefined(); // free for a healing rotation
  });

  it('several runners on one group: exactly one rotation per generation', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'race', 2);
    w.clock.advance(HOUR + 1);
    const claims = await Promise.allSettled(
      Array.from({ length: 5 }, () => w.service.rotateNow(group.id, { trigger: op })),
    );
    const won = claims.filter((c) => c.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const c of claims.filter((x) => x.status === 'rejected')) {
      expect((c as PromiseRejectedResult).reason).toMatchObject({ code: 'RUN_IN_PROGRESS' });
    }
    const runId = (won[0] as PromiseFulfilledResult<{ runId: string }>).value.runId;
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: `r${i}` }),
      ),
    );
    expect(results.some((r) => r.status === 'completed')).toBe(true);
    const run = await drive(w, runId);
    expect(run.status).toBe('completed');
    expectLockstep(
      w,
      group.members.map((m) => m.keyId),
      2,
    );
    expect(w.kp.calls.filter((c) => c.op === 'rotate')).toHaveLength(3);
  });

  it('verify probes every generation on every member', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'verify', 2);
    await rotated(w, group.id);
    await rotated(w, group.id);
    const v = await w.service.verify(group.id);
    expect(v.ok).toBe(true);
    expect(v.probes).toHaveLength(3 * 3);
    // A foreign rotation keeps every old generation unwrappable: only the current version shows the drift.
    w.kp.foreignRotate(group.members[1]!.keyId);
    const drift = await w.service.verify(group.id);
    expect(drift.probes.every((p) => p.ok)).toBe(true);
    expect(drift).toMatchObject({ ok: false, result: 'problems', status: 'diverged' });
    expect(drift.problems[0]).toMatch(/holds version .* the lineage records/);
    expect(drift.healRunId).toBeDefined();
    expect((await w.stores.groups.get(group.id)).value.lastVerification).toMatchObject({
      trigger: 'operator',
      result: 'problems',
    });
  });

  it('markForeignChange diverges the group and schedules a healing rotation after the hour', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'heal', 2);
    w.clock.advance(2 * HOUR);
    const victim = group.members[1]!;
    w.kp.foreignRotate(victim.keyId);
    const res = await w.service.markForeignChange(group.id, {
      crn: victim.crn,
      action: 'kms.secrets.rotate',
      eventId: 'evt-1',
      eventTimeMs: w.clock.nowMs(),
      initiator: 'IBMid-someone',
    });
    expect(res.status).toBe('diverged');
    expect(res.healRunId).toBeDefined();
    const early = await w.service.advanceRun(res.healRunId!, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'h' });
    expect(early.nextAttemptAtMs).toBeGreaterThanOrEqual(w.clock.nowMs() + HOUR - 1);
    const run = await drive(w, res.healRunId!);
    expect(run.status).toBe('completed');
    expect((await w.stores.groups.get(group.id)).value.status).toBe('healthy');
    expect((await w.stores.lineage.get(group.id, 2)).notes?.join()).toContain('foreign');
    expect(w.notes.map((n) => n.type)).toEqual(
      expect.arrayContaining(['com.ibm.lockstep.group.diverged', 'com.ibm.lockstep.rotation.healed']),
    );
    expect(w.kp.handles(victim.keyId)).toHaveLength(3);
  });

  it('attachEvidence adds Activity Tracker evidence to the run member once', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'evidence', 1);
    const run = await rotated(w, group.id);
    const m = group.members[1]!;
    const ev = {
      eventId: 'e1',
      action: 'kms.secrets.rotate',
      eventTimeMs: w.clock.nowMs(),
      initiator: 'lockstep',
      outcome: 'success',
    };
    // evidence is bound to a run only by a caller that matched the event with the run's persisted call
    expect(await w.service.attachEvidence({ crn: m.crn }, ev)).toEqual({});
    expect(await w.service.attachEvidence({ crn: m.crn, runId: run.id }, ev)).toEqual({ runId: run.id });
    await w.service.attachEvidence({ crn: m.crn, runId: run.id }, ev);
    const after = await w.service.getRun(run.id);
    expect(after.members.find((x) => x.crn === m.crn)!.evidence).toHaveLength(1);
  });

  it('evidence that arrives after the record is its own chained record naming the generation; the record stays', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'late', 1);
    const run = await rotated(w, group.id);
    const record = await w.stores.lineage.get(group.id, 2);
    const ev = (id: string) => lateEvent(w, id);
    const [p, d] = [group.members[0]!, group.members[1]!];
    // Act: two late events (one twice), on two members
    await w.service.attachEvidence({ crn: d.crn, runId: run.id }, ev('late-1'));
    await w.service.attachEvidence({ crn: d.crn, runId: run.id }, ev('late-1'));
    await w.service.attachEvidence({ crn: p.crn, runId: run.id }, ev('late-2'));
    // Assert: the generation record is untouched; the chain holds each event once, linked and anchored
    expect((await w.stores.lineage.get(group.id, 2)).hash).toBe(record.hash);
    const chain = await w.stores.evidence!.chain(group.id);
    expect(chain.map((r) => [r.seq, r.generation, r.crn, r.evidence.eventId])).toEqual([
      [1, 2, d.crn, 'late-1'],
      [2, 2, p.crn, 'late-2'],
    ]);
    expect(chain.every((r) => r.generationHash === record.hash && r.runId === run.id)).toBe(true);
    expect(verifyEvidenceChain(chain, await w.stores.lineage.chain(group.id))).toMatchObject({ ok: true, length: 2 });
    // and it stays on the run too
    const after = await w.service.getRun(run.id);
    expect(after.members.find((x) => x.crn === d.crn)!.evidence.map((e) => e.eventId)).toEqual(['late-1']);
    // a tampered record breaks the chain
    const forged = chain.map((r) => (r.seq === 1 ? { ...r, evidence: { ...r.evidence, initiator: 'mallory' } } : r));
    expect(verifyEvidenceChain(forged, await w.stores.lineage.chain(group.id)).breaks[0]).toMatchObject({
      seq: 1,
      kind: 'hash-mismatch',
    });
  });

  it('signs each appended evidence head (chain: evidence), and signs it on a retry when signing had failed', async () => {
    const pair = checkpointKeyPairFromSeed(Buffer.alloc(32, 7));
    const privateKey = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const w = fakeWorld({ checkpointSigning: { privateKey } });
    const group = await createFakeGroup(w, 'signed', 1);
    const run = await rotated(w, group.id);
    const d = group.members[1]!;
    const ev = (id: string) => lateEvent(w, id);
    const store = w.stores.evidence!;
    // Act: the first append's signature fails (the record is appended), then the event is delivered again
    const put = store.putCheckpoint;
    store.putCheckpoint = async () => {
      throw new AppError('STORE_UNAVAILABLE', 'down');
    };
    await expect(w.service.attachEvidence({ crn: d.crn, runId: run.id }, ev('late-1'))).rejects.toThrow('down');
    store.putCheckpoint = put;
    expect(await store.checkpoints(group.id)).toEqual([]);
    await w.service.attachEvidence({ crn: d.crn, runId: run.id }, ev('late-1'));
    await w.service.attachEvidence({ crn: d.crn, runId: run.id }, ev('late-2'));
    // Assert: both heads are signed and verify with the checkpoint key
    const cps = await store.checkpoints(group.id);
    expect(cps.map((c) => [c.chain, c.seq])).toEqual([
      ['evidence', 1],
      ['evidence', 2],
    ]);
    const report = verifyEvidenceChain(await store.chain(group.id), await w.stores.lineage.chain(group.id), {
      groupId: group.id,
      checkpoints: cps,
      keys: checkpointKeyring([pair.publicKey]),
    });
    expect(report).toMatchObject({ ok: true, length: 2, signedThroughSeq: 2, unsigned: 0 });
  });

  it('adds a region by replaying every escrowed generation, one per allowed hour', async () => {
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'region', 1);
    await rotated(w, group.id);
    await rotated(w, group.id);
    const { runId } = await w.service.addRegion(group.id, {
      region: 'eu-gb' as never,
      instanceId: instanceOf(9),
      trigger: op,
    });
    // generation 1 (create) and 2 (first rotation is free) now; 3 after an hour
    const first = await w.service.catchUp(group.id, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'c' });
    expect(first).toEqual({ advanced: 2, pending: 1 });
    w.clock.advance(HOUR + 1);
    const second = await w.service.catchUp(group.id, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'c' });
    expect(second.pending).toBe(0);
    const run = await w.service.getRun(runId);
    expect(run.status).toBe('completed');
    const g = (await w.stores.groups.get(group.id)).value;
    expect(g.members).toHaveLength(3);
    expectLockstep(
      w,
      g.members.map((m) => m.keyId),
      3,
    );
    expect((await w.service.verify(group.id)).ok).toBe(true);
  });

  it('adopts existing identical keys (canary) and rotates from there', async () => {
    const w = fakeWorld();
    const material = Buffer.alloc(32, 7);
    const a = w.kp.seedKey({ region: 'us-south', instanceId: instanceOf(0), material });
    const b = w.kp.seedKey({ region: 'us-east', instanceId: instanceOf(1), material });
    const c = w.kp.seedKey({ region: 'eu-de', instanceId: instanceOf(2), material: Buffer.alloc(32, 8) });
    await expect(
      w.service.adoptGroup({
        id: 'bad',
        name: 'x',
        schedule: {},
        primaryCrn: a.crn,
        duplicateCrns: [c.crn],
        trigger: op,
      }),
    ).rejects.toMatchObject({ code: 'MATERIAL_MISMATCH' });
    const { group, lineage } = await w.service.adoptGroup({
      id: 'adopted',
      name: 'x',
      schedule: {},
      primaryCrn: a.crn,
      duplicateCrns: [b.crn],
      trigger: op,
    });
    expect(lineage.generation).toBe(1);
    expect(lineage.verification.every((v) => v.ok)).toBe(true);
    expect(group.escrowedFromGeneration).toBe(2);
    // before its first lockstep rotation there is nothing escrowed to replay: region add says so and offers it
    const refused = await w.service
      .addRegion(group.id, { region: 'eu-de' as never, instanceId: instanceOf(5), trigger: op })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'VALIDATION_FAILED', details: { hint: 'lockstep rotate adopted' } });
    expect((refused as Error).message).toContain('first lockstep rotation escrows');
    const run = await rotated(w, group.id);
    expect(run.status).toBe('completed');
    expectLockstep(w, [a.id, b.id], 2);
    // after it, a new region starts at the first escrowed generation
    const { runId } = await w.service.addRegion(group.id, {
      region: 'eu-de' as never,
      instanceId: instanceOf(5),
      trigger: op,
    });
    const added = await drive(w, runId);
    expect(added.status).toBe('completed');
    expect(Object.keys(added.replay!.versions)).toEqual(['2']);
    expect(added.notes.join(' ')).toContain('cannot unwrap data wrapped under earlier ones');
    const v = await w.service.verify(group.id);
    expect(v.ok, v.problems.join('; ')).toBe(true);
  });

  it('rejects bad input with typed errors and changes nothing', async () => {
    const w = fakeWorld();
    const before = w.stores.dump();
    await expect(
      w.service.createGroup({
        id: 'Bad Id',
        name: 'x',
        schedule: {},
        primary: { region: 'us-south' as never, instanceId: instanceOf(0) },
        duplicates: [],
        trigger: op,
      }),
    ).rejects.toBeInstanceOf(AppError);
    await expect(
      w.service.createGroup({
        id: 'dup-inst',
        name: 'x',
        schedule: {},
        primary: { region: 'us-south' as never, instanceId: instanceOf(0) },
        duplicates: [{ region: 'us-east' as never, instanceId: instanceOf(0) }],
        trigger: op,
      }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(w.service.getRun('run-nothing-here')).rejects.toMatchObject({ code: 'RUN_NOT_FOUND' });
    expect(w.stores.dump()).toBe(before);
  });
});

describe('crash injection at every persisted step (in-process)', () => {
  it.each([1, 2, 4])('with %i duplicates: every crash point resumes to the same end state', async (dups) => {
    const matrix: string[] = [];
    for (let crashAt = 1; ; crashAt++) {
      const w = fakeWorld();
      const group = await createFakeGroup(w, `crash-${dups}`, dups);
      w.clock.advance(HOUR + 1);
      const { runId } = await w.service.rotateNow(group.id, { trigger: op });
      let n = 0;
      let crashedStep: string | undefined;
      let fingerprintAtCrash: string | undefined;
      const crashing = w.serviceWith((run, step) => {
        if (++n === crashAt) {
          crashedStep = `${step}/${run.status}`;
          fingerprintAtCrash = run.fingerprint;
          throw new SimulatedCrash(step);
        }
      });
      const first = await crashing.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'doomed' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!crashedStep) {
        expect(first).toBeUndefined();
        break; // crashAt is past the last persisted step
      }
      expect(first).toBeInstanceOf(SimulatedCrash);
      w.clock.advance(150_000); // the crashed worker's leases expire
      const run = await drive(w, runId);
      expect(run.status, `crash after persist #${crashAt} (${crashedStep})`).toBe('completed');
      if (fingerprintAtCrash) expect(run.fingerprint).toBe(fingerprintAtCrash);
      expectLockstep(
        w,
        group.members.map((m) => m.keyId as KeyId),
        2,
      );
      await expectChain(w.stores, group, 2);
      matrix.push(`#${crashAt} ${crashedStep} → completed`);
    }
    // escrowed, the duplicates staged (one group commit), verified, primary staged, proved, recorded and released
    // (one save: the release follows the lineage append at once; the plan is the claim's)
    expect(matrix).toHaveLength(6);
  });

  it('the store fails the last save, after the lineage append and the group release: the next pass finishes, nothing twice', async () => {
    // Arrange: the save that would end the run (record and release, one save) fails once, after the group update
    const w = fakeWorld();
    const group = await createFakeGroup(w, 'crash-last-save', 2);
    w.clock.advance(HOUR + 1);
    const { runId } = await w.service.rotateNow(group.id, { trigger: op });
    const save = w.stores.runs.save.bind(w.stores.runs);
    let dying = true;
    let groupAtDeath: { currentGeneration: number; activeRunId?: string } | undefined;
    w.stores.runs.save = async (run, rev) => {
      if (dying && (run as RotationRun).step === 'done') {
        dying = false;
        groupAtDeath = (await w.stores.groups.get(group.id)).value;
        throw new AppError('STORE_UNAVAILABLE', 'injected: the store is down', { retryable: true });
      }
      return save(run, rev);
    };

    // Act
    const first = await w.service.advanceRun(runId, { deadlineAtMs: w.clock.nowMs() + HOUR, holder: 'first' });
    const run = await drive(w, runId);

    // Assert: the first pass had appended the record and released the group; the run stayed at `record`
    expect(first).toMatchObject({ status: 'running', step: 'record' });
    expect(groupAtDeath).toMatchObject({ currentGeneration: 2 });
    expect(groupAtDeath?.activeRunId).toBeUndefined();
    expect(run.status).toBe('completed');
    await expectChain(w.stores, group, 2); // one record for generation 2, not two
    expectLockstep(
      w,
      group.members.map((m) => m.keyId as KeyId),
      2,
    );
    const after = (await w.stores.groups.get(group.id)).value;
    expect(after).toMatchObject({ status: 'healthy', currentGeneration: 2 });
  });
});
