/**
 * `region add`: validates and plans an add-region run; the runner does the rest through the decider (stage ⇄ prove
 * from generation 1, then release joins the new duplicate to the group, see `src/rotation/README.md`). The new
 * member's key is created from generation 1's escrowed material under an alias unique to the run (found again after
 * a crash), then every later escrowed generation is replayed into it in order — one rotation per allowed hour (the
 * first rotation after creation has no time restriction) — each proved with that generation's lineage canary.
 */
import { AppError, asRunId, type GroupId, type InstanceId, type RegionId, type Trigger } from '../core/index.js';
import { newRun, type RotationRun, RunKind, slotOf } from '../rotation/index.js';
import { escrowOf, runsOf } from './runDocument.js';
import type { RunnerContext } from './runner.js';

/** What an adopted group's operator is told: its first lockstep rotation gives it escrow (and so region add). */
export const ADOPTED_NO_ESCROW =
  'was adopted: its generation 1 material was never seen by lockstep, so it is not escrowed and a new region cannot replay it. Its first lockstep rotation escrows the new generation';

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
  // An adopted group's history starts being escrowed with its first lockstep rotation: the new region starts there.
  const from = group.escrowedFromGeneration ?? 1;
  if (from > group.currentGeneration || !(await escrowOf(ctx.stores, groupId, from))) {
    throw new AppError(
      'VALIDATION_FAILED',
      `Group ${groupId} ${ADOPTED_NO_ESCROW}: rotate it (lockstep rotate ${groupId}), then add the region; it starts at that generation.`,
      { details: { groupId, hint: `lockstep rotate ${groupId}` } },
    );
  }
  const nowMs = ctx.clock.nowMs();
  const tag = ctx.random.uuid().replace(/-/g, '').slice(0, 8);
  const runId = asRunId(`run-${groupId.slice(0, 40)}-add-${input.region}-${tag}`);
  const member = { role: 'duplicate' as const, region: input.region, instanceId: input.instanceId };
  const run = newRun({
    id: runId,
    groupId,
    generation: group.currentGeneration,
    kind: RunKind.ADD_REGION,
    trigger: input.trigger,
    members: [member],
    escrowKey: group.escrow,
    createIntent: {
      keys: {
        [slotOf(member)]: {
          name: `${ctx.config.keyNamePrefix}-${groupId}-duplicate-${input.region}`,
          alias: `${ctx.config.keyNamePrefix}-${groupId}-add-${tag}`.slice(0, 90),
          description: `lockstep group ${groupId} (duplicate)`,
        },
      },
    },
    nowMs,
    // one generation per allowed hour, plus the usual allowance for failures
    deadlineAtMs:
      nowMs + ctx.config.runDeadlineMs + (group.currentGeneration - from + 1) * ctx.config.rotationMinIntervalMs,
    replayFrom: from,
    ...(from > 1
      ? {
          notes: [
            `generations 1–${from - 1} were adopted and never escrowed: the new region starts at generation ${from} and cannot unwrap data wrapped under earlier ones`,
          ],
        }
      : {}),
  });
  await runsOf(ctx.stores).create(run);
  ctx.logger.info('region add planned', { groupId, runId, region: input.region, generations: group.currentGeneration });
  return { runId };
}
