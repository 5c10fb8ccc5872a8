import type { RotationPlan, VerifyResult } from '../../app/index.js';
import { progressLines, type RunView } from '../../local/dev/index.js';
import type { CliContext } from '../context.js';
import { formatDuration } from '../duration.js';
import { CliError, ExitCode } from '../exitCodes.js';
import { formatTime, short } from '../format.js';
import { renderPairs, renderTable } from '../output.js';
import { createRuntime } from '../runtime.js';
import { groupIdArg } from './read.js';

/** `lockstep plan <group>`: the service's dry run (reads every member; changes nothing). */
export async function plan(ctx: CliContext, groupId: string): Promise<number> {
  const id = groupIdArg(groupId);
  const rt = await createRuntime(ctx);
  const p: RotationPlan = await rt.service.plan(id);
  const now = Date.now();
  ctx.out.result(p, () =>
    [
      renderPairs([
        ['group', p.groupId],
        ['next generation', p.nextGeneration],
        [
          'can start now',
          p.canStartNow
            ? ctx.out.green('yes')
            : `${ctx.out.yellow('no')} — earliest ${formatTime(p.earliestStartAtMs)} (in ${formatDuration(Math.max(0, p.earliestStartAtMs - now))})`,
        ],
        ['active run', p.activeRunId],
      ]),
      '',
      'steps:',
      ...p.steps.map((x, i) => `  ${i + 1}. ${x}`),
      '',
      renderTable(p.members, [
        { header: 'ROLE', value: (m) => m.role },
        { header: 'REGION', value: (m) => m.region },
        { header: 'STATE', value: (m) => (m.state === 'active' ? m.state : ctx.out.red(m.state)) },
        { header: 'VERSION', value: (m) => short(m.currentVersionId) },
        { header: 'LAST ROTATED', value: (m) => formatTime(m.lastRotateAtMs) },
        {
          header: 'MAY ROTATE',
          value: (m) =>
            m.earliestRotationAtMs && m.earliestRotationAtMs > now ? formatTime(m.earliestRotationAtMs) : 'now',
        },
        { header: 'PROBLEMS', value: (m) => m.problems.join('; ') },
      ]),
      ...p.problems.map((x) => `${ctx.out.yellow('!')} ${x}`),
    ].join('\n'),
  );
  return 0;
}

/**
 * `lockstep verify <group>`: reads every member's current version and state from Key Protect and compares them with
 * the lineage, then probes every recorded generation by canary; exit 3 on drift or any failed probe.
 */
export async function verify(ctx: CliContext, groupId: string): Promise<number> {
  const id = groupIdArg(groupId);
  const rt = await createRuntime(ctx);
  ctx.out.progress(`reading every member of ${id} and probing every generation…`);
  const r: VerifyResult = await rt.service.verify(id, { trigger: 'operator:cli', probes: true });
  ctx.out.result(r, () =>
    [
      renderTable(r.members, [
        { header: 'ROLE', value: (x) => x.role },
        { header: 'REGION', value: (x) => x.region },
        { header: 'STATE', value: (x) => x.state },
        { header: 'CURRENT', value: (x) => short(x.currentVersionId) },
        { header: 'RECORDED', value: (x) => short(x.expectedVersionId) },
        { header: 'RESULT', value: (x) => (x.ok ? ctx.out.green('ok') : ctx.out.red('DRIFT')) },
      ]),
      '',
      renderTable(r.probes, [
        { header: 'GEN', value: (x) => x.generation, align: 'right' },
        { header: 'MEMBER', value: (x) => x.crn },
        { header: 'RESULT', value: (x) => (x.ok ? ctx.out.green('ok') : ctx.out.red('FAILED')) },
        { header: 'VERSION', value: (x) => short(x.reportedVersionId) },
        { header: 'EXPECTED', value: (x) => short(x.expectedVersionId) },
        { header: 'ERROR', value: (x) => x.error },
      ]),
      r.unchecked.length ? `unchecked generations (no canary evidence): ${r.unchecked.join(', ')}` : '',
      ...r.problems.map((p) => ctx.out.red(`problem: ${p}`)),
      r.healRunId ? `healing run ${r.healRunId} scheduled; group ${r.status}` : '',
      r.ok
        ? ctx.out.green(`${id}: every member is active at its recorded version and holds every recorded generation.`)
        : r.result === 'incomplete'
          ? ctx.out.yellow(`${id}: verification incomplete (a member could not be read or a run is recording).`)
          : ctx.out.red(`${id}: members are NOT in lockstep.`),
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return r.ok ? ExitCode.OK : ExitCode.VERIFY_FAILED;
}

type ApiRun = RunView;

/**
 * `lockstep rotate <group>`: asks the API to rotate now (`POST /v1/groups/{id}/rotations`, operator role), then
 * follows the run (`GET /v1/runs/{id}`) printing each step as it happens, until it completes, fails or `--timeout`.
 */
export async function rotate(
  ctx: CliContext,
  groupId: string,
  opts: { wait: boolean; force: boolean; reason?: string; timeoutMs: number },
): Promise<number> {
  const id = groupIdArg(groupId);
  const accepted = await ctx
    .api()
    .post<{ runId: string; groupId: string; status: string }>(`/v1/groups/${id}/rotations`, {
      ...(opts.reason ? { reason: opts.reason } : {}),
      ...(opts.force ? { force: true } : {}),
    });
  ctx.out.progress(`rotation of ${id} accepted: run ${accepted.runId}`);
  if (!opts.wait) {
    ctx.out.result(accepted, () => accepted.runId);
    return 0;
  }
  const run = await followRun(ctx, accepted.runId, opts.timeoutMs);
  ctx.out.result({ ...accepted, run }, () => runSummary(ctx, run));
  if (run.status === 'completed') return 0;
  if (run.status === 'diverged') return ExitCode.VERIFY_FAILED;
  if (run.status === 'failed') return ExitCode.FAILED;
  throw new CliError(
    ExitCode.FAILED,
    `run ${run.id} is still ${run.status} at step ${run.step} after ${formatDuration(opts.timeoutMs)}`,
    {
      hint: `it continues on the next ticks; follow it with \`lockstep status ${id}\``,
    },
  );
}

/** Polls a run, printing new transitions and member progress on stderr, until it finishes or `timeoutMs` passes. */
export async function followRun(ctx: CliContext, runId: string, timeoutMs: number): Promise<ApiRun> {
  const until = Date.now() + timeoutMs;
  let seen = 0;
  const memberSeen = new Map<string, string>();
  for (;;) {
    const run = await ctx.api().get<ApiRun>(`/v1/runs/${runId}`);
    for (const line of progressLines(run, seen, memberSeen)) ctx.out.progress(`  ${line}`);
    seen = run.transitions?.length ?? 0;
    if (['completed', 'failed', 'diverged', 'stopped'].includes(run.status)) return run;
    if (Date.now() >= until) return run;
    await Promise.race([new Promise((r) => setTimeout(r, 1000)), ctx.io.interrupted]);
  }
}

function runSummary(ctx: CliContext, run: ApiRun): string {
  const ok = run.status === 'completed';
  return [
    `${ok ? ctx.out.green('✓') : ctx.out.red('✗')} ${run.groupId} generation ${run.generation}: ${run.status}${run.statusReason ? ` — ${run.statusReason}` : ''}`,
    run.fingerprint ? `  fingerprint ${run.fingerprint}` : '',
    ...(run.members ?? []).map((m) => `  ${m.role.padEnd(9)} ${m.region.padEnd(9)} ${short(m.versionId)}`),
  ]
    .filter(Boolean)
    .join('\n');
}
