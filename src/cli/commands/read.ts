import type { DrillRecord, Group, LineageRecord } from '../../core/index.js';
import { asGroupId } from '../../core/index.js';
import type { CliContext } from '../context.js';
import { formatDuration } from '../duration.js';
import { usageError } from '../exitCodes.js';
import { formatTime, short } from '../format.js';
import { renderPairs, renderTable } from '../output.js';

/** A group as `GET /v1/groups` returns it (the escrow reference is named `escrowKey`). */
export type ApiGroup = Omit<Group, 'escrow'> & {
  escrowKey: { region: string; instanceId: string; keyId: string; crn: string };
};

interface Page<T> {
  items: T[];
  next?: { href: string; cursor: string };
}

/** Reads every page of a paginated `/v1` collection (bounded by `max`). */
export async function readAll<T>(
  ctx: CliContext,
  path: string,
  max: number,
  query: Record<string, string | number> = {},
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await ctx.api().get<Page<T>>(path, { ...query, limit: Math.min(200, max - items.length), cursor });
    items.push(...page.items);
    cursor = page.next?.cursor;
  } while (cursor && items.length < max);
  return items;
}

export function groupIdArg(v: string): string {
  try {
    return asGroupId(v);
  } catch {
    throw usageError(
      `"${v}" is not a group id`,
      'group ids are 1-63 lower-case letters, digits or hyphens; `lockstep group list` shows them',
    );
  }
}

const statusColor = (ctx: CliContext, s: string) =>
  s === 'healthy' || s === 'complete' || s === 'completed'
    ? ctx.out.green(s)
    : s === 'rotating' || s === 'running' || s === 'pending'
      ? ctx.out.cyan(s)
      : s === 'degraded' || s === 'superseded'
        ? ctx.out.yellow(s)
        : ctx.out.red(s);

/** `ok 3m ago (tick:…)`, `problems …`; `requested` when a verification is pending; `-` before the first one. */
function verificationText(g: ApiGroup, long = false): string {
  const v = g.lastVerification;
  const pending = g.verificationRequestedAtMs !== undefined ? ' (another requested)' : '';
  if (!v) return g.verificationRequestedAtMs !== undefined ? 'requested' : '-';
  const head = `${v.result} ${formatTime(v.atMs)}${long ? ` by ${v.trigger}` : ''}${pending}`;
  return long && v.problems.length ? `${head}\n  ${v.problems.join('\n  ')}` : head;
}

const scheduleText = (g: ApiGroup) =>
  g.schedule.cron
    ? `cron ${g.schedule.cron}`
    : g.schedule.intervalMs
      ? `every ${formatDuration(g.schedule.intervalMs)}`
      : '-';

/** `lockstep group list`: every group, one line each. */
export async function groupList(ctx: CliContext): Promise<number> {
  const groups = await readAll<ApiGroup>(ctx, '/v1/groups', 10_000);
  ctx.out.result({ groups }, () =>
    groups.length === 0
      ? 'No groups yet. Create one with `lockstep group apply -f groups.yaml`.'
      : renderTable(groups, [
          { header: 'GROUP', value: (g) => g.id },
          { header: 'STATUS', value: (g) => statusColor(ctx, g.status) },
          { header: 'GEN', value: (g) => g.currentGeneration, align: 'right' },
          { header: 'PRIMARY', value: (g) => g.members.find((m) => m.role === 'primary')?.region },
          {
            header: 'DUPLICATES',
            value: (g) =>
              g.members
                .filter((m) => m.role === 'duplicate')
                .map((m) => m.region)
                .join(','),
          },
          { header: 'SCHEDULE', value: scheduleText },
          { header: 'LAST ROTATED', value: (g) => formatTime(g.lastRotatedAtMs) },
        ]),
  );
  return 0;
}

/** `lockstep status [group]`: health of one group (members, active run) or of all groups. */
export async function status(ctx: CliContext, groupId: string | undefined): Promise<number> {
  if (!groupId) {
    const groups = await readAll<ApiGroup>(ctx, '/v1/groups', 10_000);
    const now = Date.now();
    ctx.out.result({ groups }, () =>
      groups.length === 0
        ? 'No groups yet.'
        : renderTable(groups, [
            { header: 'GROUP', value: (g) => g.id },
            { header: 'STATUS', value: (g) => statusColor(ctx, g.status) },
            { header: 'GEN', value: (g) => g.currentGeneration, align: 'right' },
            { header: 'MEMBERS', value: (g) => g.members.length, align: 'right' },
            { header: 'LAST ROTATED', value: (g) => formatTime(g.lastRotatedAtMs) },
            {
              header: 'NEXT DUE',
              value: (g) =>
                g.nextDueAtMs === undefined
                  ? '-'
                  : g.nextDueAtMs <= now
                    ? 'now'
                    : `in ${formatDuration(g.nextDueAtMs - now)}`,
            },
            { header: 'ACTIVE RUN', value: (g) => g.activeRunId },
            { header: 'VERIFIED', value: (g) => verificationText(g) },
            { header: 'REASON', value: (g) => g.statusReason },
          ]),
    );
    return 0;
  }
  const id = groupIdArg(groupId);
  const group = await ctx.api().get<ApiGroup>(`/v1/groups/${id}`);
  const latest = (await ctx.api().get<Page<LineageRecord>>(`/v1/groups/${id}/generations`, { limit: 1 })).items[0];
  let run: Record<string, unknown> | undefined;
  if (group.activeRunId) {
    try {
      run = await ctx.api().get<Record<string, unknown>>(`/v1/runs/${group.activeRunId}`);
    } catch {
      run = undefined; // auditors may not read runs
    }
  }
  const versionOf = (crn: string) => latest?.members.find((m) => m.crn === crn)?.keyVersionId;
  ctx.out.result({ group, latestGeneration: latest ?? null, activeRun: run ?? null }, () =>
    [
      renderPairs([
        ['group', `${group.id} (${group.name})`],
        ['status', statusColor(ctx, group.status) + (group.statusReason ? ` — ${group.statusReason}` : '')],
        ['generation', group.currentGeneration],
        ['fingerprint', latest?.fingerprint],
        ['schedule', scheduleText(group)],
        ['last rotated', formatTime(group.lastRotatedAtMs)],
        ['next due', formatTime(group.nextDueAtMs)],
        [
          'active run',
          group.activeRunId
            ? `${group.activeRunId} (${String(run?.status ?? '?')}, step ${String(run?.step ?? '?')})`
            : '-',
        ],
        ['escrow key', group.escrowKey?.crn],
        ...((group.escrowedFromGeneration ?? 1) > group.currentGeneration
          ? [
              [
                'escrow',
                `none yet: adopted keys (lockstep never saw their material). The first lockstep rotation escrows generation ${group.escrowedFromGeneration}; region add and catch-up need it. Rotate now: lockstep rotate ${group.id}`,
              ] as [string, string],
            ]
          : []),
        ['last verification', verificationText(group, true)],
        [
          'last DR drill',
          group.lastDrill
            ? `${group.lastDrill.seq} ${group.lastDrill.result === 'passed' ? ctx.out.green('passed') : ctx.out.red('failed')} ${formatTime(group.lastDrill.atMs)}${group.drillSchedule ? ` (every ${formatDuration(group.drillSchedule.intervalMs)})` : ''}`
            : group.drillSchedule
              ? `none yet (every ${formatDuration(group.drillSchedule.intervalMs)})`
              : '-',
        ],
      ]),
      '',
      renderTable(group.members, [
        { header: 'ROLE', value: (m) => m.role },
        { header: 'REGION', value: (m) => m.region },
        { header: 'INSTANCE', value: (m) => m.instanceId },
        { header: 'KEY', value: (m) => m.keyId },
        { header: `VERSION (gen ${latest?.generation ?? '-'})`, value: (m) => versionOf(m.crn) },
      ]),
    ].join('\n'),
  );
  return 0;
}

/** `lockstep history <group>`: the lineage, newest first. */
export async function history(ctx: CliContext, groupId: string, opts: { limit: number }): Promise<number> {
  const id = groupIdArg(groupId);
  const records = await readAll<LineageRecord>(ctx, `/v1/groups/${id}/generations`, opts.limit);
  const drills = await readAll<DrillRecord>(ctx, `/v1/groups/${id}/drills`, opts.limit);
  ctx.out.result({ groupId: id, generations: records, drills }, () =>
    [
      historyTable(ctx, id, records),
      drills.length === 0
        ? ctx.out.dim(`No DR drills recorded for ${id} yet (run one with \`lockstep drill ${id}\`).`)
        : `DR drills:\n${renderTable(drills, [
            { header: 'DRILL', value: (d) => d.seq, align: 'right' },
            {
              header: 'RESULT',
              value: (d) => (d.result === 'passed' ? ctx.out.green('passed') : ctx.out.red('failed')),
            },
            { header: 'FINISHED', value: (d) => formatTime(d.finishedAtMs) },
            { header: 'TRIGGER', value: (d) => `${d.trigger.kind}:${d.trigger.by}` },
            { header: 'AT GEN', value: (d) => d.lineageHead?.generation ?? '-' },
            {
              header: 'SWITCH-OVER',
              value: (d) => (d.switchover.switchoverMs === null ? '-' : `${d.switchover.switchoverMs} ms`),
            },
            { header: 'PROBLEMS', value: (d) => d.problems.slice(0, 2).join('; ') },
            { header: 'HASH', value: (d) => short(d.hash, 12) },
          ])}`,
    ].join('\n\n'),
  );
  return 0;
}

function historyTable(ctx: CliContext, id: string, records: LineageRecord[]): string {
  return records.length === 0
    ? `No generations recorded for ${id} yet.`
    : renderTable(records, [
        { header: 'GEN', value: (r) => r.generation, align: 'right' },
        { header: 'STATUS', value: (r) => statusColor(ctx, r.status) },
        { header: 'FINISHED', value: (r) => formatTime(r.finishedAtMs) },
        { header: 'TRIGGER', value: (r) => `${r.trigger.kind}:${r.trigger.by}` },
        { header: 'FINGERPRINT', value: (r) => r.fingerprint },
        { header: 'VERSIONS', value: (r) => r.members.map((m) => `${m.region}=${short(m.keyVersionId)}`).join(' ') },
        {
          header: 'CANARIES',
          value: (r) => `${r.verification.filter((c) => c.ok).length}/${r.verification.length} ok`,
        },
        { header: 'HASH', value: (r) => short(r.hash, 12) },
      ]);
}
