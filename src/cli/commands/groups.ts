import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Group, InstanceId, RegionId, Schedule, Trigger } from '../../core/index.js';
import { asInstanceId, asRegionId, parseKeyCrn } from '../../core/index.js';
import { nextDueAtMs } from '../../scheduling/index.js';
import type { CliConfig } from '../config.js';
import type { CliContext } from '../context.js';
import { formatDuration } from '../duration.js';
import { CliError, ExitCode, usageError } from '../exitCodes.js';
import {
  formatIssues,
  type GroupSpec,
  KEY_PROTECT_MIN_ROTATION_INTERVAL_MS,
  type MemberSpec,
  parseGroupsFile,
} from '../groupsFile.js';
import { renderTable } from '../output.js';
import type { GroupCreateOptions } from '../program.js';
import { createRuntime, type Runtime } from '../runtime.js';
import { followRun } from './operator.js';
import { groupIdArg } from './read.js';

type Action =
  | { kind: 'create'; spec: GroupSpec }
  | { kind: 'adopt'; spec: GroupSpec }
  | { kind: 'update'; spec: GroupSpec; changes: string[] }
  | { kind: 'add-region'; spec: GroupSpec; members: MemberSpec[]; changes: string[] }
  | { kind: 'unchanged'; spec: GroupSpec };

const trigger = (what: string): Trigger => ({
  kind: 'operator',
  by: `cli:${process.env.USER ?? 'operator'}`,
  reason: what,
});

/** Validates a groups text; prints every issue; throws exit 2 when any is an error. */
function validated(ctx: CliContext, text: string, file: string, config: CliConfig): GroupSpec[] {
  const r = parseGroupsFile(text, {
    file,
    minIntervalMs: config.rotationMinIntervalMs ?? KEY_PROTECT_MIN_ROTATION_INTERVAL_MS,
    knownRegions: Object.keys(config.keyProtect),
  });
  const warnings = r.issues.filter((i) => i.severity === 'warning');
  if (warnings.length) ctx.io.stderr(`${formatIssues(warnings, file)}\n`);
  if (!r.ok) {
    const errors = r.issues.filter((i) => i.severity === 'error');
    throw new CliError(
      ExitCode.USAGE,
      `${file} has ${errors.length} error${errors.length > 1 ? 's' : ''}; nothing was changed:\n${formatIssues(errors, file)}`,
      {
        details: { issues: errors as unknown as Record<string, unknown>[] } as unknown as Record<string, unknown>,
      },
    );
  }
  return r.groups;
}

function placement(m: MemberSpec, config: CliConfig): { region: RegionId; instanceId: InstanceId; keyRingId?: string } {
  const instanceId = m.instanceId ?? config.keyProtect[m.region]?.instanceId;
  if (!instanceId) throw usageError(`no instance configured for region ${m.region}`);
  return { region: m.region, instanceId, ...(m.keyRing ? { keyRingId: m.keyRing } : {}) };
}

const sameSchedule = (a: Schedule, b: Schedule) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(o: object): object {
  return Object.fromEntries(
    Object.entries(o)
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([k, v]) => [k, v && typeof v === 'object' ? sortKeys(v) : v]),
  );
}

/** Works out what applying `spec` would do, reading only. */
async function decide(rt: Runtime, spec: GroupSpec): Promise<Action> {
  const existing = (await rt.stores.groups.find(spec.id))?.value;
  const all = [spec.primary, ...spec.duplicates];
  if (!existing) {
    const withKey = all.filter((m) => m.keyId).length;
    if (withKey === 0) return { kind: 'create', spec };
    if (withKey === all.length) return { kind: 'adopt', spec };
    throw usageError(`group ${spec.id}: either every member names an existing keyId (adopt) or none does (create)`);
  }
  const where = (m: { region: string; instanceId?: string }) =>
    `${m.region}/${m.instanceId ?? rt.config.keyProtect[m.region]?.instanceId}`;
  const have = new Map(existing.members.map((m) => [where(m), m]));
  const want = all.map((m) => [where(m), m] as const);
  const primary = existing.members.find((m) => m.role === 'primary')!;
  if (where(primary) !== where(spec.primary)) {
    throw usageError(`group ${spec.id}: the primary cannot change (${where(primary)} → ${where(spec.primary)})`);
  }
  const removed = [...have.keys()].filter((k) => !want.some(([w]) => w === k));
  if (removed.length) {
    throw usageError(
      `group ${spec.id}: removing members is not supported by apply (${removed.join(', ')})`,
      'keep them in the file',
    );
  }
  const added = want.filter(([w]) => !have.has(w)).map(([, m]) => m);
  const changes: string[] = [];
  if (existing.name !== spec.name) changes.push(`name "${existing.name}" → "${spec.name}"`);
  if ((existing.description ?? '') !== (spec.description ?? '')) changes.push('description');
  if (!sameSchedule(existing.schedule, spec.schedule)) changes.push('schedule');
  if (added.length)
    return { kind: 'add-region', spec, members: added, changes: [...changes, ...added.map((m) => `+${m.region}`)] };
  if (changes.length) return { kind: 'update', spec, changes };
  return { kind: 'unchanged', spec };
}

async function updateGroup(rt: Runtime, spec: GroupSpec): Promise<Group> {
  const nowMs = Date.now();
  return (
    await rt.stores.groups.mutate(spec.id, (g) => {
      const next: Group = { ...g, name: spec.name, schedule: spec.schedule, updatedAtMs: nowMs };
      if (spec.description !== undefined) next.description = spec.description;
      const due = nextDueAtMs(spec.schedule, {
        createdAtMs: g.createdAtMs,
        ...(g.lastRotatedAtMs ? { lastRotatedAtMs: g.lastRotatedAtMs } : {}),
        nowMs,
      });
      if (due === undefined) delete next.nextDueAtMs;
      else next.nextDueAtMs = due;
      return next;
    })
  ).value;
}

/** Sets `nextDueAtMs` when the create/adopt path left it unset, so the scheduler picks the group up. */
async function ensureScheduled(rt: Runtime, id: Group['id']): Promise<void> {
  await rt.stores.groups.mutate(id, (g) => {
    if (g.nextDueAtMs !== undefined) return g;
    const due = nextDueAtMs(g.schedule, {
      createdAtMs: g.createdAtMs,
      ...(g.lastRotatedAtMs ? { lastRotatedAtMs: g.lastRotatedAtMs } : {}),
      nowMs: Date.now(),
    });
    return due === undefined ? g : { ...g, nextDueAtMs: due };
  });
}

async function execute(ctx: CliContext, rt: Runtime, a: Action): Promise<Record<string, unknown>> {
  const { spec } = a;
  const escrowCrn = spec.escrow ?? rt.config.escrow?.crn;
  const escrow = escrowCrn ? parseKeyCrn(escrowCrn) : undefined;
  switch (a.kind) {
    case 'create': {
      ctx.out.progress(
        `creating ${spec.id}: one fresh material into ${[spec.primary, ...spec.duplicates].map((m) => m.region).join(', ')}…`,
      );
      const { group, lineage } = await rt.service.createGroup({
        id: spec.id,
        name: spec.name,
        ...(spec.description ? { description: spec.description } : {}),
        schedule: spec.schedule,
        primary: placement(spec.primary, rt.config),
        duplicates: spec.duplicates.map((d) => placement(d, rt.config)),
        ...(escrow
          ? { escrow: { region: escrow.region, instanceId: escrow.instanceId, keyId: escrow.keyId, crn: escrow.crn } }
          : {}),
        trigger: trigger('group apply: create'),
      });
      await ensureScheduled(rt, group.id);
      return { group: group.id, action: 'created', generation: lineage.generation, fingerprint: lineage.fingerprint };
    }
    case 'adopt': {
      ctx.out.progress(`adopting ${spec.id}: checking by canary that the keys hold identical material…`);
      const crnOf = async (m: MemberSpec) => (await rt.kp.getKey({ ...placement(m, rt.config), keyId: m.keyId! })).crn;
      const { group, lineage } = await rt.service.adoptGroup({
        id: spec.id,
        name: spec.name,
        ...(spec.description ? { description: spec.description } : {}),
        schedule: spec.schedule,
        primaryCrn: await crnOf(spec.primary),
        duplicateCrns: await Promise.all(spec.duplicates.map(crnOf)),
        ...(escrow
          ? { escrow: { region: escrow.region, instanceId: escrow.instanceId, keyId: escrow.keyId, crn: escrow.crn } }
          : {}),
        trigger: trigger('group apply: adopt'),
      });
      await ensureScheduled(rt, group.id);
      return { group: group.id, action: 'adopted', generation: lineage.generation, fingerprint: lineage.fingerprint };
    }
    case 'update': {
      const g = await updateGroup(rt, spec);
      return { group: g.id, action: 'updated', changes: a.changes };
    }
    case 'add-region': {
      if (a.changes.length > a.members.length) await updateGroup(rt, spec);
      const runs: string[] = [];
      for (const m of a.members) {
        const { runId } = await rt.service.addRegion(spec.id, {
          ...placement(m, rt.config),
          trigger: trigger(`group apply: add ${m.region}`),
        });
        runs.push(runId);
      }
      return { group: spec.id, action: 'adding regions', changes: a.changes, runs };
    }
    case 'unchanged':
      return { group: spec.id, action: 'unchanged' };
  }
}

function describe(a: Action): string {
  switch (a.kind) {
    case 'create':
      return `create: new keys in ${[a.spec.primary, ...a.spec.duplicates].map((m) => m.region).join(', ')}`;
    case 'adopt':
      return 'adopt existing keys (verified by canary)';
    case 'update':
      return `update ${a.changes.join(', ')}`;
    case 'add-region':
      return `${a.changes.join(', ')} (replays every escrowed generation)`;
    case 'unchanged':
      return 'unchanged';
  }
}

const scheduleText = (s: Schedule) =>
  `${s.cron ? `cron "${s.cron}"` : `every ${formatDuration(s.intervalMs ?? 0)}`}${s.window ? ` in ${s.window.start}-${s.window.end}` : ''}${s.timeZone ? ` ${s.timeZone}` : ''}`;

/** `lockstep group apply -f <file>`: validate the whole file, then create/adopt/update groups in file order. */
export async function groupApply(ctx: CliContext, opts: { file: string; dryRun: boolean }): Promise<number> {
  let text: string;
  try {
    text = readFileSync(resolve(ctx.io.cwd, opts.file), 'utf8');
  } catch {
    throw usageError(`cannot read groups file ${opts.file}`, 'see examples/groups.yaml for the format');
  }
  const { config } = ctx.config();
  const specs = validated(ctx, text, opts.file, config);
  return applySpecs(ctx, specs, opts.dryRun);
}

async function applySpecs(ctx: CliContext, specs: GroupSpec[], dryRun: boolean): Promise<number> {
  const rt = await createRuntime(ctx);
  await rt.stores.ensureSetup();
  // decide everything before touching anything: an impossible change stops the whole apply
  const actions: Action[] = [];
  for (const s of specs) actions.push(await decide(rt, s));
  if (dryRun) {
    ctx.out.result(
      {
        dryRun: true,
        actions: actions.map((a) => ({
          group: a.spec.id,
          action: a.kind,
          detail: describe(a),
          schedule: a.spec.schedule,
        })),
      },
      () =>
        renderTable(actions, [
          { header: 'GROUP', value: (a) => a.spec.id },
          { header: 'WOULD', value: (a) => describe(a) },
          { header: 'SCHEDULE', value: (a) => scheduleText(a.spec.schedule) },
        ]),
    );
    return 0;
  }
  const results: Record<string, unknown>[] = [];
  for (const a of actions) results.push(await execute(ctx, rt, a));
  ctx.out.result({ results }, () =>
    renderTable(results, [
      { header: 'GROUP', value: (r) => r.group },
      { header: 'RESULT', value: (r) => r.action },
      {
        header: 'DETAIL',
        value: (r) =>
          [
            r.generation ? `gen ${String(r.generation)}` : '',
            r.fingerprint ?? '',
            ...((r.changes as string[]) ?? []),
            ...((r.runs as string[]) ?? []),
          ]
            .filter(Boolean)
            .join(' '),
      },
    ]),
  );
  return 0;
}

/** `lockstep group create <id> --primary r --duplicate r …`: the same validation as a groups file, for one group. */
export async function groupCreate(ctx: CliContext, id: string, o: GroupCreateOptions): Promise<number> {
  const { config } = ctx.config();
  const primary = o.primary ?? config.region;
  if (primary === undefined) {
    throw usageError(
      'group create needs the primary region',
      'pass --primary <region>, or set IBMCLOUD_REGION (or region in lockstep.config.yaml)',
    );
  }
  const doc = {
    groups: [
      {
        id,
        ...(o.name ? { name: o.name } : {}),
        ...(o.description ? { description: o.description } : {}),
        primary,
        duplicates: o.duplicate,
        schedule: {
          ...(o.every ? { every: o.every } : {}),
          ...(o.cron ? { cron: o.cron } : {}),
          ...(o.window ? { window: o.window } : {}),
          ...(o.timeZone ? { timeZone: o.timeZone } : {}),
          ...(o.maxAge ? { maxAge: o.maxAge } : {}),
        },
      },
    ],
  };
  let specs: GroupSpec[];
  try {
    specs = validated(ctx, JSON.stringify(doc), 'arguments', config);
  } catch (err) {
    if (err instanceof CliError) {
      // map file paths back to flag names
      throw new CliError(
        err.exitCode,
        err.message
          .replace(/arguments {2}error {2}groups\[0\]\.?/g, '  ')
          .replace(/schedule\.every/g, '--every')
          .replace(/schedule\.cron/g, '--cron')
          .replace(/schedule\.window/g, '--window')
          .replace(/schedule\.timeZone/g, '--time-zone')
          .replace(/schedule\.maxAge/g, '--max-age')
          .replace(/duplicates(\[\d+\])?/g, '--duplicate')
          .replace(/primary/g, '--primary')
          .replace(/arguments has/, 'the arguments have'),
      );
    }
    throw err;
  }
  return applySpecs(ctx, specs, o.dryRun);
}

/** `lockstep region add <group> <region>`: adds a duplicate and replays every escrowed generation into it. */
export async function regionAdd(
  ctx: CliContext,
  groupId: string,
  region: string,
  opts: { instance?: string; wait: boolean },
): Promise<number> {
  const id = groupIdArg(groupId);
  let r: RegionId;
  try {
    r = asRegionId(region);
  } catch {
    throw usageError(`"${region}" is not a region`, 'regions look like us-south, us-east, eu-de');
  }
  const { config } = ctx.config();
  let instanceId: InstanceId | undefined;
  if (opts.instance) {
    try {
      instanceId = asInstanceId(opts.instance);
    } catch {
      throw usageError(`flag --instance: "${opts.instance}" is not an instance GUID`);
    }
  } else instanceId = config.keyProtect[r]?.instanceId;
  if (!instanceId) {
    throw usageError(
      `no Key Protect instance configured for region ${r}`,
      `give --instance <guid>, or configure keyProtect.${r}`,
    );
  }
  const rt = await createRuntime(ctx);
  const { runId } = await rt.service.addRegion(id, { region: r, instanceId, trigger: trigger(`region add ${r}`) });
  ctx.out.progress(`adding ${r} to ${id}: run ${runId} (one generation per allowed rotation interval)`);
  if (!opts.wait || !ctx.config().config.api.url) {
    ctx.out.result({ groupId: id, region: r, instanceId, runId }, () => runId);
    return 0;
  }
  const run = await followRun(ctx, runId, 120_000);
  ctx.out.result({ groupId: id, region: r, instanceId, runId, status: run.status }, () => `${runId}: ${run.status}`);
  return run.status === 'failed' ? ExitCode.FAILED : ExitCode.OK;
}
