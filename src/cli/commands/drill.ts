/** `lockstep drill <group>|--all`: run a DR drill now through the API (operator role) and show what it proved. */
import type { DrillRecord } from '../../core/index.js';
import type { CliContext } from '../context.js';
import { ExitCode, usageError } from '../exitCodes.js';
import { formatTime, short } from '../format.js';
import { renderTable } from '../output.js';
import { type ApiGroup, groupIdArg, readAll } from './read.js';

/** Exit 0 when every drill passed, 3 when one failed (a switch-over would not work now). */
export async function drill(ctx: CliContext, groupId: string | undefined, opts: { all: boolean; reason?: string }) {
  if (groupId && opts.all)
    throw usageError('give a group or --all, not both', 'lockstep drill demo | lockstep drill --all');
  if (!groupId && !opts.all) throw usageError('which group?', 'lockstep drill <group>, or --all for every group');
  const ids = groupId ? [groupIdArg(groupId)] : (await readAll<ApiGroup>(ctx, '/v1/groups', 10_000)).map((g) => g.id);
  const drills: DrillRecord[] = [];
  for (const id of ids) {
    ctx.out.progress(`drilling ${id}: canaries of every retained generation at every member, then a switch-over…`);
    drills.push(
      await ctx.api().post<DrillRecord>(`/v1/groups/${id}/drills`, opts.reason ? { reason: opts.reason } : {}),
    );
  }
  const ok = drills.every((d) => d.result === 'passed');
  ctx.out.result({ ok, drills }, () => drills.map((d) => renderDrill(ctx, d)).join('\n\n'));
  return ok ? ExitCode.OK : ExitCode.VERIFY_FAILED;
}

/** One drill for people: the verdict, the switch-over time and each member's part. */
export function renderDrill(ctx: CliContext, d: DrillRecord): string {
  const verdict = d.result === 'passed' ? ctx.out.green('PASSED') : ctx.out.red('FAILED');
  const took = d.switchover.switchoverMs === null ? 'n/a' : `${d.switchover.switchoverMs} ms`;
  const now = Date.now();
  return [
    `${d.groupId} drill ${d.seq}  ${verdict}  ${formatTime(d.finishedAtMs)}  switch-over ${took}  record ${short(d.hash, 12)}`,
    `generations checked at every member: ${d.generationsChecked.join(', ') || 'none recorded yet'}`,
    renderTable(d.members, [
      { header: 'ROLE', value: (m) => m.role },
      { header: 'REGION', value: (m) => m.region },
      { header: 'HEALTH', value: (m) => (m.health === 'ok' ? ctx.out.green(m.health) : ctx.out.red(m.health)) },
      { header: 'KEY', value: (m) => m.keyState ?? '-' },
      { header: 'CANARIES', value: (m) => `${m.canaries.filter((c) => c.ok).length}/${m.canaries.length}` },
      {
        header: 'TAKES OVER',
        value: (m) =>
          m.switchover ? (m.switchover.ok ? `yes, ${m.switchover.latencyMs} ms` : ctx.out.red('NO')) : '-',
      },
      {
        header: 'MAY ROTATE',
        value: (m) =>
          m.earliestRotationAtMs === undefined
            ? '-'
            : m.earliestRotationAtMs > now
              ? formatTime(m.earliestRotationAtMs)
              : 'now',
      },
      { header: 'ENDPOINT', value: (m) => m.endpoints.public },
    ]),
    ...d.problems.map((p) => `${ctx.out.red('✗')} ${p}`),
  ].join('\n');
}
