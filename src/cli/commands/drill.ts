/** `lockstep drill <group>|--all`: run a DR drill now through the API (operator role) and show what it proved. */
import { asGroupId, type DrillRecord } from '../../core/index.js';
import type { CliContext } from '../context.js';
import { formatDuration, parseDuration } from '../duration.js';
import { ExitCode, usageError } from '../exitCodes.js';
import { formatTime, short } from '../format.js';
import { renderTable } from '../output.js';
import { createRuntime } from '../runtime.js';
import { type ApiGroup, groupIdArg, readAll } from './read.js';

/** Shortest drill interval a schedule may ask for (a drill reads every member and every retained generation). */
const MIN_DRILL_INTERVAL_MS = 60_000;

/**
 * `lockstep drill <group> --schedule 30d|off`: sets or clears the group's drill schedule (run by the `rotate` tick).
 * Acts on the store directly, like `group apply`.
 */
export async function drillSchedule(ctx: CliContext, groupId: string, every: string): Promise<number> {
  const id = asGroupId(groupIdArg(groupId));
  const off = every === 'off';
  const ms = off ? undefined : parseDuration(every);
  if (!off && (ms === undefined || ms < MIN_DRILL_INTERVAL_MS)) {
    throw usageError(`flag --schedule: "${every}" is not a duration of at least 1m`, 'use e.g. 30d, 7d or off');
  }
  const rt = await createRuntime(ctx);
  const { value } = await rt.stores.groups.mutate(id, (g) => {
    const { drillSchedule: _old, ...rest } = g;
    return ms === undefined ? rest : { ...rest, drillSchedule: { intervalMs: ms } };
  });
  ctx.out.result({ groupId: id, drillSchedule: value.drillSchedule ?? null }, () =>
    value.drillSchedule
      ? `${id}: a DR drill every ${formatDuration(value.drillSchedule.intervalMs)} (run by the rotate tick)`
      : `${id}: no scheduled DR drills (run one with \`lockstep drill ${id}\`)`,
  );
  return ExitCode.OK;
}

/** Exit 0 when every drill passed, 3 when one failed (a switch-over would not work now). */
export async function drill(
  ctx: CliContext,
  groupId: string | undefined,
  opts: { all: boolean; reason?: string; schedule?: string },
) {
  if (opts.schedule !== undefined) {
    if (!groupId || opts.all) throw usageError('--schedule needs one group', 'lockstep drill demo --schedule 30d');
    return drillSchedule(ctx, groupId, opts.schedule);
  }
  if (groupId && opts.all)
    throw usageError('give a group or --all, not both', 'lockstep drill demo | lockstep drill --all');
  if (!groupId && !opts.all) throw usageError('which group?', 'lockstep drill <group>, or --all for every group');
  const api = ctx.api(); // a missing API configuration is reported before any progress line
  const ids = groupId ? [groupIdArg(groupId)] : (await readAll<ApiGroup>(ctx, '/v1/groups', 10_000)).map((g) => g.id);
  const drills: DrillRecord[] = [];
  for (const id of ids) {
    ctx.out.progress(`drilling ${id}: canaries of every retained generation at every member, then a switch-over…`);
    drills.push(await api.post<DrillRecord>(`/v1/groups/${id}/drills`, opts.reason ? { reason: opts.reason } : {}));
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
