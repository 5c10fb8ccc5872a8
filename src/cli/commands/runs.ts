/**
 * `lockstep run retry|stop <runId>`: the operator's way to unblock a group, through the API (`POST
 * /v1/runs/{id}/retry|stop`, operator role). What each does, and what a stop leaves behind, is in
 * `src/app/operatorRuns.ts`.
 */
import type { RunActionResult } from '../../app/index.js';
import type { CliContext } from '../context.js';
import { usageError } from '../exitCodes.js';
import { renderPairs } from '../output.js';

type Answer = RunActionResult & { links: { run: string } };

function runIdArg(v: string): string {
  if (!/^run-[a-z0-9-]{8,80}$/.test(v)) {
    throw usageError(`"${v.slice(0, 90)}" is not a run id (run-…); \`lockstep status <group>\` shows the active run`);
  }
  return v;
}

/** `lockstep run retry <runId> [--reason t]`: re-opens the run so the next tick advances it at once. */
export async function runRetry(ctx: CliContext, runId: string, opts: { reason?: string }): Promise<number> {
  const id = runIdArg(runId);
  const a = await ctx.api().post<Answer>(`/v1/runs/${id}/retry`, opts.reason ? { reason: opts.reason } : {});
  ctx.out.result(a, () =>
    [
      `${ctx.out.green('✓')} run ${a.runId} re-opened (${a.status} at ${a.step}); the next tick advances it`,
      renderPairs([
        ['group', `${a.groupId} (${a.groupStatus})`],
        ['follow', `lockstep status ${a.groupId}`],
      ]),
    ].join('\n'),
  );
  return 0;
}

/** `lockstep run stop <runId> [--reason t]`: stops a rotation run before promotion and says what it left. */
export async function runStop(ctx: CliContext, runId: string, opts: { reason?: string }): Promise<number> {
  const id = runIdArg(runId);
  const a = await ctx.api().post<Answer>(`/v1/runs/${id}/stop`, opts.reason ? { reason: opts.reason } : {});
  ctx.out.result(a, () =>
    [
      `${ctx.out.yellow('■')} run ${a.runId} stopped at step ${a.stop?.step ?? a.step}; group ${a.groupId} is ${a.groupStatus}`,
      renderPairs([
        [
          'staged duplicates',
          a.stop?.staged.map((s) => `${s.region} ${s.versionId ?? ''}`.trim()).join(', ') || 'none',
        ],
        ['escrow kept', a.stop?.escrowKept ? 'yes (a retry rolls forward with it)' : 'no material was generated'],
      ]),
      a.stop?.summary ?? '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return 0;
}
