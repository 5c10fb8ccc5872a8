/**
 * `region add`: a new duplicate is created from generation 1's escrowed material, then every later escrowed
 * generation is replayed into it in order — one rotation per allowed hour (the first rotation after creation has no
 * time restriction). Each replayed generation is proved with that generation's lineage canary. When the new key
 * holds the group's current generation (and no rotation is running) it joins the group.
 */
import {
  AppError,
  asRunId,
  type Group,
  type GroupId,
  hasCode,
  type InstanceId,
  type KeyCrn,
  type KeyId,
  type KeyVersionId,
  type RegionId,
  type Trigger,
} from '../core/index.js';
import { newRun, type RotationRun, RunKind } from '../rotation/index.js';
import { probeEvidence } from './canary.js';
import { type EscrowedMaterialRecord, withEscrowedMaterial } from './escrow.js';
import type { Lease } from './ports.js';
import { escrowKeyOf, type RunnerContext, runsOf } from './runner.js';
import type { AdvanceResult } from './service.js';

export async function addRegionRun(
  ctx: RunnerContext,
  groupId: GroupId,
  input: { region: RegionId; instanceId: InstanceId; trigger: Trigger },
): Promise<{ runId: RotationRun['id'] }> {
  const { value: group } = await ctx.stores.groups.get(groupId);
  if (group.members.some((m) => m.instanceId === input.instanceId)) {
    throw new AppError('VALIDATION_FAILED', `Instance ${input.instanceId} already holds a member of group ${groupId}`, {
      details: { instanceId: input.instanceId },
    });
  }
  const first = await escrowOf(ctx, groupId, 1);
  if (!first) {
    throw new AppError(
      'VALIDATION_FAILED',
      `Group ${groupId} has no escrowed generation 1 (adopted keys): a new region cannot replay its history`,
      { details: { groupId } },
    );
  }
  const nowMs = ctx.clock.nowMs();
  const runId = asRunId(`run-${groupId.slice(0, 40)}-add-${input.region}-${ctx.random.uuid().slice(0, 8)}`);
  const run: RotationRun = {
    ...newRun({
      id: runId,
      groupId,
      generation: group.currentGeneration,
      kind: RunKind.ADD_REGION,
      trigger: input.trigger,
      members: [{ role: 'duplicate', region: input.region, instanceId: input.instanceId }],
      escrowKey: group.escrow,
      nowMs,
      deadlineAtMs: nowMs + ctx.config.runDeadlineMs,
    }),
    replay: { nextGeneration: 1, versions: {} },
  };
  await runsOf(ctx.stores).create(run);
  ctx.logger.info('region add planned', { groupId, runId, region: input.region, generations: group.currentGeneration });
  return { runId };
}

/** The escrowed material of one generation (from the run that produced it). */
async function escrowOf(
  ctx: RunnerContext,
  groupId: GroupId,
  generation: number,
): Promise<EscrowedMaterialRecord | undefined> {
  const list = await runsOf(ctx.stores).listByGroup(groupId, 500);
  const run = list.find(
    (r) =>
      r.generation === generation &&
      (r.kind === RunKind.CREATE || r.kind === RunKind.ROTATION) &&
      r.escrow &&
      (r.status === 'completed' || r.step === 'done'),
  );
  return run?.escrow;
}

/** One pass of an add-region run: replays as many generations as Key Protect allows now. */
export async function advanceReplay(
  ctx: RunnerContext,
  runId: RotationRun['id'],
  opts: { deadlineAtMs: number; holder: string },
): Promise<AdvanceResult> {
  const runs = runsOf(ctx.stores);
  let cur = await runs.get(runId);
  const log = ctx.logger.child({ runId, groupId: cur.value.groupId, kind: 'add-region' });
  const done = (reason?: string, next?: number): AdvanceResult => ({
    runId,
    status: cur.value.status,
    step: cur.value.step,
    ...(reason ? { reason } : {}),
    ...(next !== undefined ? { nextAttemptAtMs: next } : {}),
  });
  if (['completed', 'failed', 'diverged'].includes(cur.value.status)) return done(cur.value.statusReason);
  const lease = await ctx.stores.leases.acquire(
    `group:${cur.value.groupId}`,
    opts.holder,
    ctx.config.groupLeaseTtlMs,
    ctx.clock.nowMs(),
  );
  if (!lease) return done('another worker holds the group lease');
  const save = async (run: RotationRun) => {
    run.updatedAtMs = ctx.clock.nowMs();
    cur = await runs.save(run, cur.rev);
    await ctx.afterPersist?.(cur.value, cur.value.step);
  };
  try {
    for (;;) {
      const nowMs = ctx.clock.nowMs();
      if (nowMs >= opts.deadlineAtMs) return done('caller deadline reached');
      const run = structuredClone(cur.value);
      const replay = run.replay ?? { nextGeneration: 1, versions: {} };
      const m = run.members[0]!;
      const { value: group } = await ctx.stores.groups.get(run.groupId);
      const g = replay.nextGeneration;
      if (g > group.currentGeneration) {
        if (group.activeRunId) return done('waiting for the running rotation to finish before joining');
        await ctx.stores.groups.mutate(group.id, (x): Group => {
          if (x.members.some((y) => y.instanceId === m.instanceId)) return x;
          return {
            ...x,
            members: [
              ...x.members,
              {
                role: 'duplicate',
                region: m.region,
                instanceId: m.instanceId,
                keyId: m.keyId as KeyId,
                crn: m.crn as KeyCrn,
              },
            ],
            updatedAtMs: nowMs,
          };
        });
        run.status = 'completed';
        run.step = 'done';
        run.finishedAtMs = nowMs;
        run.notes.push(`joined the group at generation ${group.currentGeneration}`);
        await save(run);
        log.info('new region joined the group', { region: m.region, generation: group.currentGeneration });
        await ctx.notifier
          ?.publish({
            type: 'com.ibm.lockstep.region.added',
            subject: group.id,
            data: { groupId: group.id, runId, region: m.region, crn: m.crn ?? '', generation: group.currentGeneration },
          })
          .catch(() => undefined);
        return done();
      }
      const escrow = await escrowOf(ctx, run.groupId, g);
      if (!escrow) {
        run.status = 'failed';
        run.statusReason = `Generation ${g} of ${run.groupId} is not escrowed; the new region cannot replay it`;
        await save(run);
        return done(run.statusReason);
      }
      const record = await ctx.stores.lineage.get(run.groupId, g);
      const canary = record.verification.find((c) => c.ok);
      if (g > 1) {
        const key = await ctx.kp.getKey(refOf(m));
        const notBefore = key.lastRotateAtMs !== undefined ? key.lastRotateAtMs + ctx.config.rotationMinIntervalMs : 0;
        if (notBefore > nowMs) {
          if (run.nextAttemptAtMs !== notBefore) {
            run.nextAttemptAtMs = notBefore;
            run.status = 'pending';
            run.statusReason = `replaying generation ${g}: Key Protect allows the next rotation at ${new Date(notBefore).toISOString()}`;
            await save(run);
          }
          return done(run.statusReason, notBefore);
        }
      }
      const token = await acquire(ctx, `token:${m.region}:${m.instanceId}`, opts.holder);
      if (!token) return done('import token lease held; retry later', nowMs + ctx.config.tokenLeaseTtlMs);
      try {
        const applied = await withEscrowedMaterial(ctx.kp, escrowKeyOf(run), escrow, async (material) => {
          if (g === 1) {
            const alias = `${ctx.config.keyNamePrefix}-${run.groupId}`;
            let key = await ctx.kp
              .getKey({ region: m.region, instanceId: m.instanceId, keyId: alias as KeyId })
              .catch((err) => {
                if (hasCode(err, 'KEY_NOT_FOUND', 'VALIDATION_FAILED')) return undefined;
                throw err;
              });
            key ??= await ctx.kp.createImportedKey({
              region: m.region,
              instanceId: m.instanceId,
              name: `${ctx.config.keyNamePrefix}-${run.groupId}-duplicate-${m.region}`,
              aliases: [alias],
              material,
            });
            return { keyId: key.id, crn: key.crn, versionId: key.currentVersionId, atMs: key.creationAtMs };
          }
          const ref = refOf(m);
          const before = await ctx.kp.listVersions(ref);
          const known = replay.versions[String(g - 1)];
          if (before[0] && before[0].id !== known) {
            return { versionId: before[0].id, atMs: before[0].createdAtMs, found: true };
          }
          await ctx.kp.rotateWithMaterial(ref, material, { correlationId: ctx.random.uuid() }).catch(async (err) => {
            const after = await ctx.kp.listVersions(ref);
            if (after[0] && after[0].id !== known) return; // applied after all
            throw err;
          });
          const after = await ctx.kp.listVersions(ref);
          return { versionId: after[0]!.id, atMs: after[0]!.createdAtMs };
        });
        if ('keyId' in applied && applied.keyId) {
          m.keyId = applied.keyId;
          m.crn = applied.crn;
        }
        if (canary) {
          const probe = await probeEvidence(ctx.kp, refOf(m), canary);
          if (!probe.holds) {
            run.status = 'diverged';
            run.statusReason = `replayed generation ${g} into ${m.region} but its canary does not unwrap there`;
            await save(run);
            return done(run.statusReason);
          }
        }
        replay.versions[String(g)] = applied.versionId as KeyVersionId;
        replay.nextGeneration = g + 1;
        replay.lastRotateAtMs = applied.atMs;
        run.replay = replay;
        run.status = 'running';
        delete run.statusReason;
        delete run.nextAttemptAtMs;
        run.notes.push(`generation ${g} replayed as version ${applied.versionId}`);
        await save(run);
        log.info('generation replayed', { generation: g, region: m.region, versionId: applied.versionId });
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        const next = ctx.clock.nowMs() + ctx.config.retryBaseMs;
        const fresh = structuredClone(cur.value);
        fresh.status = 'degraded';
        fresh.statusReason = `replaying generation ${g} into ${m.region} failed: ${err.code} ${err.message}`;
        fresh.nextAttemptAtMs = next;
        await save(fresh);
        return done(fresh.statusReason, next);
      } finally {
        await ctx.stores.leases.release(token).catch(() => undefined);
      }
    }
  } finally {
    await ctx.stores.leases.release(lease).catch(() => undefined);
  }
}

function refOf(m: RotationRun['members'][number]) {
  if (!m.keyId) throw new AppError('INTERNAL', 'the new member has no key yet');
  return { region: m.region, instanceId: m.instanceId, keyId: m.keyId };
}

async function acquire(ctx: RunnerContext, name: string, holder: string): Promise<Lease | undefined> {
  for (let i = 0; i < 20; i++) {
    const l = await ctx.stores.leases.acquire(name, holder, ctx.config.tokenLeaseTtlMs, ctx.clock.nowMs());
    if (l) return l;
    await new Promise((r) => setTimeout(r, 50 + i * 25));
  }
  return undefined;
}
