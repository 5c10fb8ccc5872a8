/**
 * The rotation use cases over the ports (see {@link RotationService}). One engine behind every trigger.
 */
import {
  AppError,
  type AtEvidence,
  asGroupId,
  asInstanceId,
  asRegionId,
  asRunId,
  type Group,
  type GroupId,
  hasCode,
  type InstanceId,
  isAppError,
  type KeyCrn,
  type LineageRecord,
  type Member,
  parseKeyCrn,
  type RegionId,
  type RunId,
  type Schedule,
  type Trigger,
} from '../core/index.js';
import { checkLineageText } from '../lineage/index.js';
import {
  applyOutcome,
  type MemberReading,
  memberStateProblem,
  newRun,
  type RotationRun,
  RunKind,
  reopenRun,
  Step,
  slotOf,
} from '../rotation/index.js';
import { nextDueAtMs as scheduleNextDueAtMs } from '../scheduling/index.js';
import { generateAndEscrowKeeping } from './escrow.js';
import { disposeSeed, type PassSeed, prefetchImportTokens } from './importTokens.js';
import { recordLateEvidence } from './lateEvidence.js';
import { createOperatorRuns } from './operatorRuns.js';
import type { KeyInfo } from './ports.js';
import { addRegionRun } from './replay.js';
import { runsOf } from './runDocument.js';
import { advance, type RunnerContext, readMemberState } from './runner.js';
import {
  type AddRegionInput,
  type AdoptGroupInput,
  type AdvanceResult,
  type CreateGroupInput,
  DEFAULT_ROTATION_CONFIG,
  type ForeignChange,
  type MemberPlan,
  type RotationConfig,
  type RotationPlan,
  type RotationService,
  type RotationServiceDeps,
  type VerifyResult,
} from './service.js';
import { verifyGroup } from './verification.js';

const STATE_NAMES: Record<number, MemberPlan['state']> = {
  0: 'pre-active',
  1: 'active',
  2: 'suspended',
  3: 'deactivated',
  5: 'destroyed',
};

/** When the group is next due after a generation completed (scheduling module: cron/interval, window, max age). */
function defaultNextDue(group: Group, completedAtMs: number): number | undefined {
  try {
    return scheduleNextDueAtMs(group.schedule, {
      lastRotatedAtMs: completedAtMs,
      createdAtMs: group.createdAtMs,
      nowMs: completedAtMs,
    });
  } catch {
    return undefined; // a malformed schedule is reported by the scheduler, not by a finishing rotation
  }
}

/** The group document a create or adopt run writes when its keys are proved. */
function groupSpecOf(input: { name: string; description?: string; schedule?: Schedule }) {
  return {
    name: input.name,
    ...(input.description ? { description: input.description } : {}),
    schedule: input.schedule ?? {},
  };
}

function validateTrigger(t: Trigger | undefined): Trigger {
  if (!t || !['schedule', 'event', 'operator'].includes(t.kind) || typeof t.by !== 'string' || t.by.length === 0) {
    throw new AppError('VALIDATION_FAILED', 'trigger must be {kind: schedule|event|operator, by: who or what}', {
      details: { field: 'trigger' },
    });
  }
  // A trigger ends up in the signed history: refuse at the door what the record builder would refuse later (a run
  // that could never record its generation).
  checkLineageText('trigger.by', t.by, 'by');
  if (t.reason !== undefined) checkLineageText('trigger.reason', t.reason, 'reason');
  return t;
}

/**
 * Builds the rotation service over the ports.
 * @example
 * const svc = createRotationService({ kp, stores, clock: systemClock, random: cryptoRandom, logger });
 * const { runId } = await svc.rotateNow('payments', { trigger: { kind: 'operator', by: 'alice' } });
 * await svc.advanceRun(runId, { deadlineAtMs: Date.now() + 60_000, holder: 'cli' });
 */
export function createRotationService(
  deps: RotationServiceDeps & { nextDueAtMs?: RunnerContext['nextDueAtMs'] },
): RotationService {
  const config: RotationConfig = { ...DEFAULT_ROTATION_CONFIG, ...deps.config };
  const ctx: RunnerContext = {
    kp: deps.kp,
    stores: deps.stores,
    clock: deps.clock,
    random: deps.random,
    logger: deps.logger.child({ component: 'rotation' }),
    ...(deps.notifier ? { notifier: deps.notifier } : {}),
    config,
    ...(deps.afterPersist ? { afterPersist: deps.afterPersist } : {}),
    nextDueAtMs: deps.nextDueAtMs ?? defaultNextDue,
    sleep: deps.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms))),
  };
  const { kp, stores, clock, random } = deps;
  const runs = runsOf(stores);
  const log = ctx.logger;
  const now = () => clock.nowMs();
  const opts = () => ({ correlationId: random.uuid() });

  const newRunId = (groupId: GroupId, generation: number): RunId =>
    asRunId(`run-${groupId.slice(0, 40)}-g${generation}-${random.uuid().slice(0, 8)}`);

  async function readMember(m: Member): Promise<KeyInfo | AppError> {
    try {
      return await kp.getKey(m, opts());
    } catch (err) {
      if (isAppError(err)) return err;
      throw err;
    }
  }

  /** A create or adopt run's escrow key, made by the run (found again by its alias after a crash). */
  function escrowPlan(groupId: GroupId, at: { region: RegionId; instanceId: InstanceId }, alias: string) {
    return {
      region: at.region,
      instanceId: at.instanceId,
      name: `${config.keyNamePrefix}-${groupId}-escrow`,
      alias,
      description: `lockstep escrow key of group ${groupId}; only lockstep may use it`,
    };
  }

  async function getGroup(groupId: string) {
    return stores.groups.get(asGroupId(groupId));
  }

  async function activeRunOf(group: Group): Promise<RotationRun | undefined> {
    if (!group.activeRunId) return undefined;
    try {
      const r = (await runs.get(group.activeRunId)).value;
      return r.status === 'completed' || r.status === 'diverged' ? undefined : r;
    } catch (err) {
      if (hasCode(err, 'RUN_NOT_FOUND')) return undefined; // claimed, then crashed before the run was written
      throw err;
    }
  }

  /**
   * A claim's work ahead: the material generated and escrowed (under the group's escrow key, with the generation's
   * AAD), and the duplicates' import tokens fetched under their instances' leases (held by the run id, as the run's
   * own prefetch would). `dispose` frees whatever the claim does not hand over.
   */
  function prepareAhead(group: Group, generation: number, runId: RunId) {
    const escrowing = generateAndEscrowKeeping(kp, random, group.escrow, group.id, generation, opts()).catch(
      () => undefined, // the pass generates and escrows then
    );
    const prepared = prefetchImportTokens(
      ctx,
      group.members.filter((m) => m.role !== 'primary'),
      runId,
    );
    return {
      escrowing,
      prepared,
      async dispose(): Promise<void> {
        const e = await escrowing;
        await disposeSeed(stores, { prepared, ...(e ? { material: e.material } : {}) });
      },
    };
  }

  /**
   * The members read for a claim: refuses (throws) what cannot rotate — a member deleted or not active, one rotated
   * within Key Protect's interval, a non-retryable error; `undefined` when a member could not be read just now (the
   * run's plan step reads again, retries and degrades if it must), else the readings that become the run's plan.
   */
  async function readForClaim(group: Group, nowMs: number): Promise<MemberReading[] | undefined> {
    const results = await Promise.all(
      group.members.map((m) =>
        readMemberState(kp, m, slotOf(m), opts()).catch((err: unknown) =>
          isAppError(err) ? err : Promise.reject(err),
        ),
      ),
    );
    let readings: MemberReading[] | undefined = [];
    for (const [i, info] of results.entries()) {
      const m = group.members[i]!;
      if (info instanceof AppError) {
        if (!info.retryable) throw info;
        readings = undefined; // the run's plan step reads again, retries and degrades if it must
        continue;
      }
      if (info.deleted) {
        throw new AppError('MEMBER_NOT_ACTIVE', `Member ${m.crn} (${m.region}) no longer exists`, {
          details: { crn: m.crn },
        });
      }
      if (info.state !== 1) {
        throw new AppError('MEMBER_NOT_ACTIVE', `Member ${m.crn} (${m.region}) ${memberStateProblem(info.state)}`, {
          details: { crn: m.crn, state: info.state },
        });
      }
      if (info.lastRotateAtMs !== undefined && info.lastRotateAtMs + config.rotationMinIntervalMs > nowMs) {
        const at = info.lastRotateAtMs + config.rotationMinIntervalMs;
        throw new AppError(
          'ROTATION_TOO_SOON',
          `Member ${m.crn} (${m.region}) was rotated less than ${Math.round(config.rotationMinIntervalMs / 60000)} min ago; Key Protect allows the next rotation at ${new Date(at).toISOString()}`,
          { details: { crn: m.crn, earliestAtMs: at } },
        );
      }
      readings?.push(info);
    }
    return readings;
  }

  /**
   * Claims the group for its next generation and persists the run (see RotationService.rotateNow). `ahead` (a pass
   * follows at once, in this process): while the members are read, the new material is escrowed and the duplicates'
   * import tokens are fetched under their instances' leases, so the run is created with its plan and its escrow and
   * the pass starts at stage with both (one round trip instead of two before the first secure import). Whatever the
   * claim does not hand to a pass is released and zeroed here.
   */
  async function claimRotation(
    groupId: string,
    o: { trigger: Trigger; force?: boolean },
    ahead: boolean,
  ): Promise<{ runId: RunId; seed?: PassSeed }> {
    const trigger = validateTrigger(o?.trigger);
    for (let attempt = 0; attempt < 3; attempt++) {
      const { value: group, rev } = await getGroup(groupId);
      const active = await activeRunOf(group);
      if (active) {
        throw new AppError(
          'RUN_IN_PROGRESS',
          active.status === 'failed'
            ? `Run ${active.id} of group ${group.id} failed; resume it (it reuses its escrowed material) before starting another`
            : `Run ${active.id} of group ${group.id} is ${active.status} at step ${active.step}`,
          { details: { runId: active.id, status: active.status, step: active.step } },
        );
      }
      const nowMs = now();
      const generation = group.currentGeneration + 1;
      const runId = newRunId(group.id, generation);
      // Prepared while the members are read (nothing here reaches a member: a token carries no material). Only for a
      // healthy group: one that is degraded or diverged is likelier to be refused, and the tick retries a refused
      // group at every tick — its reading alone should cost Key Protect requests then, not an escrow and tokens too.
      const prep = ahead && !o.force && group.status === 'healthy' ? prepareAhead(group, generation, runId) : undefined;
      let handed = false;
      try {
        // The plan step's reading, taken now: refuses what cannot rotate with a clear error, and (when every member
        // answered) becomes the run's plan, so the run starts at generate without reading the members again.
        const readings = o.force ? undefined : await readForClaim(group, nowMs);
        try {
          await stores.groups.update(
            {
              ...group,
              activeRunId: runId,
              status: group.status === 'healthy' ? 'rotating' : group.status,
              updatedAtMs: nowMs,
            },
            rev,
          );
        } catch (err) {
          if (hasCode(err, 'STORE_CONFLICT')) continue; // someone changed the group: re-check
          throw err;
        }
        const fresh = newRun({
          id: runId,
          groupId: group.id,
          generation,
          kind: RunKind.ROTATION,
          trigger,
          members: group.members,
          escrowKey: group.escrow,
          nowMs,
          deadlineAtMs: nowMs + config.runDeadlineMs,
        });
        const planned = readings
          ? applyOutcome(fresh, { type: 'MembersRead', readings, atClaim: true }, nowMs, config)
          : fresh;
        // The escrow is saved with the run, before any member sees the material: the pass starts at stage.
        const made = await prep?.escrowing;
        const escrowed = planned.step === Step.GENERATE ? made : undefined;
        if (made && !escrowed) made.material.zero(); // a run that plans again escrows again
        const run = escrowed
          ? applyOutcome(
              planned,
              { type: 'MaterialEscrowed', fingerprint: escrowed.record.fingerprint, escrow: escrowed.record },
              nowMs,
              config,
            )
          : planned;
        const created = await runs.create(run);
        log.info('rotation claimed', { groupId: group.id, runId, generation, trigger: trigger.kind });
        if (!prep) return { runId };
        handed = true;
        return {
          runId,
          seed: { prepared: prep.prepared, run: created, ...(escrowed ? { material: escrowed.material } : {}) },
        };
      } finally {
        if (!handed) await prep?.dispose();
      }
    }
    throw new AppError('RUN_IN_PROGRESS', `Group ${groupId} is changing concurrently; try again`, {
      retryable: true,
    });
  }

  function checkPass(o: { deadlineAtMs: number; holder: string }): void {
    if (typeof o?.holder !== 'string' || o.holder === '' || !Number.isFinite(o?.deadlineAtMs)) {
      throw new AppError('VALIDATION_FAILED', 'a pass needs {deadlineAtMs: epoch ms, holder: worker id}');
    }
  }

  const service: RotationService = {
    ...createOperatorRuns(ctx),
    async createGroup(input: CreateGroupInput) {
      const groupId = asGroupId(input.id);
      const trigger = validateTrigger(input.trigger);
      if (typeof input.name !== 'string' || input.name.trim() === '') {
        throw new AppError('VALIDATION_FAILED', 'name must be a non-empty string', { details: { field: 'name' } });
      }
      const placements = [
        {
          role: 'primary' as const,
          region: asRegionId(input.primary?.region),
          instanceId: asInstanceId(input.primary?.instanceId),
          ...(input.primary?.keyRingId !== undefined ? { keyRingId: input.primary.keyRingId } : {}),
        },
        ...(input.duplicates ?? []).map((d) => ({
          role: 'duplicate' as const,
          region: asRegionId(d.region),
          instanceId: asInstanceId(d.instanceId),
          ...(d.keyRingId !== undefined ? { keyRingId: d.keyRingId } : {}),
        })),
      ];
      const instances = new Set(placements.map((p) => p.instanceId));
      if (instances.size !== placements.length) {
        throw new AppError('VALIDATION_FAILED', 'each member must be in a different Key Protect instance', {
          details: { field: 'duplicates' },
        });
      }
      const runId = asRunId(`run-${groupId}-create`);
      const found = await stores.groups.find(groupId);
      // A group at generation 0 whose active run is its create run: the keys exist, proving/recording is left.
      const resuming = found && found.value.currentGeneration === 0 && found.value.activeRunId === runId;
      if (found && !resuming) {
        throw new AppError('GROUP_EXISTS', `Group ${groupId} already exists`, { details: { groupId } });
      }
      const prior = await runs.get(runId).catch((err: unknown) => {
        if (hasCode(err, 'RUN_NOT_FOUND')) return undefined;
        throw err;
      });
      if (prior && (prior.value.status === 'completed' || prior.value.step === 'done') && !resuming) {
        throw new AppError('GROUP_EXISTS', `Group ${groupId} already exists`, { details: { groupId } });
      }
      if (!prior) {
        // The intent first: the run names every key it will make (name and an alias unique to this run) before any
        // exists, so a resumed create finds what a crashed one made instead of leaving it behind. The run then
        // escrows the material, creates the duplicates, verifies, creates the primary, proves, records, and writes
        // the group (runner.ts).
        const nowMs = now();
        const tag = random.uuid().replace(/-/g, '').slice(0, 8);
        const alias = (what: string) => `${config.keyNamePrefix}-${groupId}-${what}-${tag}`.slice(0, 90);
        const escrowAt = config.escrowInstance ?? placements[0]!;
        const run = newRun({
          id: runId,
          groupId,
          generation: 1,
          kind: RunKind.CREATE,
          trigger,
          members: placements,
          escrowKey: input.escrow,
          createIntent: {
            ...(input.escrow ? {} : { escrow: escrowPlan(groupId, escrowAt, alias('escrow')) }),
            keys: Object.fromEntries(
              placements.map((p, i) => [
                slotOf(p),
                {
                  name: `${config.keyNamePrefix}-${groupId}-${p.role}-${p.region}`,
                  alias: alias(p.role === 'primary' ? 'p' : `d${i}`),
                  description: `lockstep group ${groupId} (${p.role})`,
                },
              ]),
            ),
          },
          groupSpec: groupSpecOf(input),
          nowMs,
          deadlineAtMs: nowMs + config.runDeadlineMs,
        });
        try {
          await runs.create(run);
        } catch (err) {
          if (hasCode(err, 'STORE_CONFLICT')) {
            throw new AppError('GROUP_EXISTS', `Group ${groupId} is being created`, { details: { groupId, runId } });
          }
          throw err;
        }
        log.info('group create planned', { groupId, runId, members: placements.length });
      }
      const res = await advance(ctx, runId, { deadlineAtMs: now() + 10 * 60_000, holder: `create-${random.uuid()}` });
      if (res.status !== 'completed') {
        throw new AppError(
          res.status === 'diverged' ? 'MATERIAL_MISMATCH' : 'UPSTREAM_UNAVAILABLE',
          `Group ${groupId} was not created yet (${res.status} at ${res.step}): ${res.reason ?? 'see the run'}. Run ${runId} resumes on the next tick.`,
          { retryable: res.status !== 'diverged', details: { groupId, runId, status: res.status, step: res.step } },
        );
      }
      return { group: (await stores.groups.get(groupId)).value, lineage: await stores.lineage.get(groupId, 1) };
    },

    async adoptGroup(input: AdoptGroupInput) {
      const groupId = asGroupId(input.id);
      const trigger = validateTrigger(input.trigger);
      if (typeof input.name !== 'string' || input.name.trim() === '') {
        throw new AppError('VALIDATION_FAILED', 'name must be a non-empty string', { details: { field: 'name' } });
      }
      const parsed = [
        { role: 'primary' as const, ...parseKeyCrn(input.primaryCrn) },
        ...(input.duplicateCrns ?? []).map((c) => ({ role: 'duplicate' as const, ...parseKeyCrn(c) })),
      ];
      if (new Set(parsed.map((p) => p.instanceId)).size !== parsed.length) {
        throw new AppError('VALIDATION_FAILED', 'each member must be in a different Key Protect instance', {
          details: { field: 'duplicateCrns' },
        });
      }
      if (await stores.groups.find(groupId)) {
        throw new AppError('GROUP_EXISTS', `Group ${groupId} already exists`, { details: { groupId } });
      }
      const members: Member[] = parsed.map((p) => ({
        role: p.role,
        region: p.region,
        instanceId: p.instanceId,
        keyId: p.keyId,
        crn: p.crn,
      }));
      const infos: KeyInfo[] = [];
      for (const m of members) {
        const info = await kp.getKey(m, opts());
        if (info.state !== 1 || info.deleted) {
          throw new AppError('MEMBER_NOT_ACTIVE', `Key ${m.crn} is not active (state ${info.state})`, {
            details: { crn: m.crn, state: info.state },
          });
        }
        if (!info.imported) {
          throw new AppError(
            'VALIDATION_FAILED',
            `Key ${m.crn} was generated by Key Protect; only imported keys can be kept in lockstep`,
            { details: { crn: m.crn } },
          );
        }
        infos.push(info);
        // The ring Key Protect reports is the member's ring from now on (sent as X-Kms-Key-Ring).
        if (info.keyRingId) m.keyRingId = info.keyRingId;
      }
      // The run proves equality (canary primary ↔ every duplicate, each reporting the version read here), records
      // generation 1 and writes the group (runner.ts): nothing but the run exists until the proof passed.
      const nowMs = now();
      const runId = asRunId(`run-${groupId}-adopt`);
      const prior = await runs.get(runId).catch((err: unknown) => {
        if (hasCode(err, 'RUN_NOT_FOUND')) return undefined;
        throw err;
      });
      if (prior && prior.value.status !== 'failed') {
        throw new AppError('GROUP_EXISTS', `Group ${groupId} is being adopted by run ${runId}`, {
          details: { groupId, runId },
        });
      }
      const escrowAt = config.escrowInstance ?? members[0]!;
      const base = newRun({
        id: runId,
        groupId,
        generation: 1,
        kind: RunKind.ADOPT,
        trigger,
        members,
        escrowKey: input.escrow,
        createIntent: {
          ...(input.escrow
            ? {}
            : {
                escrow: escrowPlan(
                  groupId,
                  escrowAt,
                  `${config.keyNamePrefix}-${groupId}-escrow-${random.uuid().replace(/-/g, '').slice(0, 8)}`.slice(
                    0,
                    90,
                  ),
                ),
              }),
          keys: {},
        },
        groupSpec: groupSpecOf(input),
        nowMs,
        deadlineAtMs: nowMs + config.runDeadlineMs,
        notes: [
          'adopted: lineage starts here; equality of the existing material was proved by canary',
          'generation 1 material is not escrowed: a region added later cannot replay it',
        ],
      });
      const run: RotationRun = {
        ...base,
        step: 'prove',
        status: 'running',
        fingerprint: 'adopted:unknown-material',
        members: base.members.map((m, i) => ({
          ...m,
          progress: 'staged',
          versionId: infos[i]!.currentVersionId,
          rotatedAtMs: infos[i]!.lastRotateAtMs ?? infos[i]!.creationAtMs,
          stagedVia: 'found',
        })),
      };
      try {
        if (prior) await runs.save(run, prior.rev);
        else await runs.create(run);
      } catch (err) {
        if (hasCode(err, 'STORE_CONFLICT')) {
          throw new AppError('GROUP_EXISTS', `Group ${groupId} is being adopted`, { details: { groupId, runId } });
        }
        throw err;
      }
      const res = await advance(ctx, runId, { deadlineAtMs: now() + 10 * 60_000, holder: `adopt-${random.uuid()}` });
      if (res.status !== 'completed') {
        const done = (await runs.get(runId)).value;
        if (done.status === 'failed' && done.step === 'prove') {
          throw new AppError('MATERIAL_MISMATCH', done.statusReason ?? 'The keys do not hold identical material', {
            details: { groupId, runId },
          });
        }
        throw new AppError(
          'UPSTREAM_UNAVAILABLE',
          `Group ${groupId} was not adopted yet (${res.status} at ${res.step}): ${res.reason ?? 'see the run'}. Run ${runId} resumes on the next tick.`,
          { retryable: true, details: { groupId, runId, status: res.status, step: res.step } },
        );
      }
      log.info('group adopted', { groupId, members: members.length });
      return { group: (await stores.groups.get(groupId)).value, lineage: await stores.lineage.get(groupId, 1) };
    },

    async plan(groupId: string): Promise<RotationPlan> {
      const { value: group } = await getGroup(groupId);
      const active = await activeRunOf(group);
      const nowMs = now();
      const problems: string[] = [];
      const members: MemberPlan[] = await Promise.all(
        group.members.map(async (m) => {
          const info = await readMember(m);
          if (info instanceof AppError) {
            return {
              role: m.role,
              crn: m.crn,
              region: m.region,
              state: 'unreachable' as const,
              problems: [`${info.code}: ${info.message}`],
            };
          }
          const earliest =
            info.lastRotateAtMs !== undefined ? info.lastRotateAtMs + config.rotationMinIntervalMs : nowMs;
          const mp: string[] = [];
          const stateProblem = memberStateProblem(info.state, info.deleted);
          if (stateProblem) mp.push(stateProblem);
          if (!info.imported) mp.push('not an imported key: it cannot be rotated with lockstep material');
          if (info.currentVersionId) {
            // A version the lineage does not know means someone rotated this member outside lockstep.
            const known = await stores.lineage.findByKeyVersion(info.currentVersionId);
            if (!known)
              mp.push(`current version ${info.currentVersionId} is not in the lineage (out-of-band rotation?)`);
          }
          return {
            role: m.role,
            crn: m.crn,
            region: m.region,
            state: STATE_NAMES[info.state] ?? 'unreachable',
            currentVersionId: info.currentVersionId,
            ...(info.lastRotateAtMs !== undefined ? { lastRotateAtMs: info.lastRotateAtMs } : {}),
            earliestRotationAtMs: Math.max(nowMs, earliest),
            problems: mp,
          };
        }),
      );
      for (const m of members) for (const p of m.problems) problems.push(`${m.role} ${m.region}: ${p}`);
      if (active) problems.push(`run ${active.id} is ${active.status} at step ${active.step}`);
      const earliestStartAtMs = Math.max(nowMs, ...members.map((m) => m.earliestRotationAtMs ?? nowMs));
      return {
        groupId: group.id,
        nextGeneration: group.currentGeneration + 1,
        earliestStartAtMs,
        canStartNow: problems.length === 0 && earliestStartAtMs <= nowMs,
        ...(active ? { activeRunId: active.id } : {}),
        members,
        steps: [
          'plan: take the group lease; read every member',
          'generate: 32 fresh bytes; fingerprint; escrow under the group escrow key',
          `stage: rotate ${group.members.length - 1} duplicate(s), instances in parallel (≤${config.stageConcurrency}), one secure import at a time per instance (import-token lease)`,
          'verify: canary across the duplicates',
          'promote: rotate the primary with the same material',
          'prove: canary primary ↔ every duplicate, each reporting its recorded version',
          `record: lineage generation ${group.currentGeneration + 1} (hash-chained), signed checkpoint`,
          'release: group healthy, lease released, notification',
        ],
        problems,
      };
    },

    async rotateNow(groupId: string, o: { trigger: Trigger; force?: boolean }) {
      const { runId } = await claimRotation(groupId, o, false);
      return { runId };
    },

    async startRotation(groupId: string, o: { trigger: Trigger; deadlineAtMs: number; holder: string }) {
      checkPass(o);
      const { runId, seed } = await claimRotation(groupId, { trigger: o?.trigger }, true);
      return { runId, result: await advance(ctx, runId, { deadlineAtMs: o.deadlineAtMs, holder: o.holder }, seed) };
    },

    async advanceRun(runId: string, o: { deadlineAtMs: number; holder: string }) {
      const id = asRunId(runId);
      checkPass(o);
      return advance(ctx, id, o);
    },

    async resume(runId: string, o: { trigger: Trigger }): Promise<AdvanceResult> {
      validateTrigger(o?.trigger);
      const id = asRunId(runId);
      const cur = await runs.get(id);
      const run = cur.value;
      if (run.status !== 'failed' && run.status !== 'degraded') {
        throw new AppError(
          'VALIDATION_FAILED',
          `Run ${id} is ${run.status}; only a failed or degraded run can be resumed`,
          {
            details: { runId: id, status: run.status },
          },
        );
      }
      const nowMs = now();
      const reopened = reopenRun(run, nowMs, nowMs + config.runDeadlineMs);
      reopened.notes.push(`resumed by ${o.trigger.kind}:${o.trigger.by}`);
      await runs.save(reopened, cur.rev);
      if (run.kind === RunKind.ROTATION) {
        await stores.groups.mutate(run.groupId, (g) => {
          const out: Group = { ...g, status: 'rotating', activeRunId: id, updatedAtMs: nowMs };
          delete out.statusReason;
          return out;
        });
      }
      return { runId: id, status: reopened.status, step: reopened.step };
    },

    async verify(groupId: string, o?: { trigger?: string; probes?: boolean }): Promise<VerifyResult> {
      return verifyGroup(ctx, newRunId, asGroupId(groupId), {
        trigger: o?.trigger ?? 'operator',
        probes: o?.probes ?? true,
      });
    },

    async addRegion(groupId: string, input: AddRegionInput) {
      return addRegionRun(ctx, asGroupId(groupId), {
        region: asRegionId(input?.region),
        instanceId: asInstanceId(input?.instanceId),
        trigger: validateTrigger(input?.trigger),
      });
    },

    async catchUp(groupId: string, o: { deadlineAtMs: number; holder: string }) {
      const gid = asGroupId(groupId);
      const list = await runs.listByGroup(gid, 100);
      let advanced = 0;
      let pending = 0;
      for (const r of list.filter(
        (x) =>
          (x.kind === RunKind.ADD_REGION || x.kind === RunKind.CATCH_UP) &&
          ['pending', 'running', 'degraded'].includes(x.status),
      )) {
        const before = r.replay?.nextGeneration ?? 1;
        const res = await advance(ctx, r.id, o);
        const after = (await runs.get(r.id)).value.replay?.nextGeneration ?? 1;
        advanced += after - before;
        if (res.status !== 'completed') pending += 1;
      }
      return { advanced, pending };
    },

    async getRun(runId: string) {
      return (await runs.get(asRunId(runId))).value;
    },

    async attachEvidence(target: { crn: string; runId?: string }, evidence: AtEvidence) {
      const { crn } = parseKeyCrn(target?.crn);
      if (!evidence || typeof evidence.eventId !== 'string' || evidence.eventId === '') {
        throw new AppError('VALIDATION_FAILED', 'evidence.eventId is required', { details: { field: 'eventId' } });
      }
      // Evidence is bound to a run only by the caller that matched the event with a call the run made and persisted.
      const runId: RunId | undefined = target.runId ? asRunId(target.runId) : undefined;
      if (!runId) return {};
      for (let attempt = 0; attempt < 5; attempt++) {
        const cur = await runs.get(runId);
        const run = structuredClone(cur.value);
        const m = run.members.find((x) => x.crn === crn);
        if (!m) return {};
        if (m.evidence.some((e) => e.eventId === evidence.eventId)) {
          await recordLateEvidence(ctx, cur.value, crn, evidence); // a retry after a failed append
          return { runId };
        }
        m.evidence.push({ ...evidence });
        run.updatedAtMs = now();
        try {
          await runs.save(run, cur.rev);
          log.info('activity tracker evidence attached', { runId, crn, eventId: evidence.eventId });
          await recordLateEvidence(ctx, run, crn, evidence);
          return { runId };
        } catch (err) {
          if (!hasCode(err, 'STORE_CONFLICT')) throw err;
        }
      }
      throw new AppError('STORE_CONFLICT', `Run ${runId} kept changing; evidence not attached`, { retryable: true });
    },

    async markForeignChange(groupId: string, change: ForeignChange) {
      const { value: group } = await getGroup(groupId);
      const { crn } = parseKeyCrn(change?.crn);
      if (!group.members.some((m) => m.crn === crn)) {
        throw new AppError('VALIDATION_FAILED', `${crn} is not a member of group ${group.id}`, { details: { crn } });
      }
      // The change's action, time and initiator are claims: they label the verification, Key Protect decides.
      const r = await verifyGroup(ctx, newRunId, group.id, {
        trigger: `event:${String(change.eventId).slice(0, 100)}`,
        probes: false,
      });
      return { status: r.status, ...(r.healRunId ? { healRunId: r.healRunId } : {}) };
    },

    async findGroupByMember(crn: string) {
      const parsed = parseKeyCrn(crn);
      let cursor: string | undefined;
      do {
        const page = await stores.groups.list({ limit: 100, ...(cursor ? { cursor } : {}) });
        const hit = page.items.find((g) =>
          g.members.some(
            (m) => m.crn === parsed.crn || (m.instanceId === parsed.instanceId && m.keyId === parsed.keyId),
          ),
        );
        if (hit) return hit;
        cursor = page.next;
      } while (cursor);
      return undefined;
    },
  };
  return service;
}

export type { KeyCrn, LineageRecord, RotationRun };
export { slotOf };
