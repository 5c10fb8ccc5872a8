import { Cron } from 'croner';
import type { GroupId, InstanceId, KeyCrn, KeyId, RegionId, Schedule } from '../core/index.js';
import { asGroupId, asInstanceId, asKeyId, asRegionId, parseKeyCrn } from '../core/index.js';
import { formatDuration, parseDuration } from './duration.js';
import { clipQuoted } from './exitCodes.js';
import { formatPath, parseLocatedYaml } from './yamlDoc.js';

/** One member as written in a groups file. `keyId` absent means "lockstep creates the key". */
export interface MemberSpec {
  region: RegionId;
  /** Absent: the instance configured for the region (keyProtect.<region>.instanceId). */
  instanceId?: InstanceId;
  /** Absent: lockstep creates an imported root key; present: lockstep adopts it (verified by canary). */
  keyId?: KeyId;
  /** The Key Protect key ring the key lives in (created there, or expected there when adopted). */
  keyRing?: string;
}

/** One group as declared in a groups file. */
export interface GroupSpec {
  id: GroupId;
  name: string;
  description?: string;
  primary: MemberSpec;
  duplicates: MemberSpec[];
  schedule: Schedule;
  /** Escrow key CRN for this group (else the file's `defaults.escrow`, else the configured escrow key). */
  escrow?: KeyCrn;
}

/** A problem found in a groups file, with where it is. */
export interface GroupsFileIssue {
  severity: 'error' | 'warning';
  /** Dotted path such as `groups[1].schedule.every`. */
  path: string;
  line?: number;
  col?: number;
  message: string;
}

export interface GroupsFileOptions {
  /** Name shown in messages. */
  file?: string;
  /** Smallest allowed rotation interval (Key Protect: one rotation per key per hour). */
  minIntervalMs?: number;
  /** Regions with a configured instance; members without `instanceId` must be in one of them. */
  knownRegions?: readonly string[];
}

export interface GroupsFileResult {
  groups: GroupSpec[];
  issues: GroupsFileIssue[];
  /** True when there is no issue of severity error. */
  ok: boolean;
}

/** Key Protect's rule: one rotation per key per hour. */
export const KEY_PROTECT_MIN_ROTATION_INTERVAL_MS = 3_600_000;

type Path = (string | number)[];

const TOP_KEYS = ['version', 'defaults', 'groups'];
const DEFAULT_KEYS = ['schedule', 'escrow'];
const GROUP_KEYS = ['id', 'name', 'description', 'primary', 'duplicates', 'schedule', 'escrow'];
const MEMBER_KEYS = ['region', 'instanceId', 'keyId', 'crn', 'keyRing'];
const KEY_RING = /^[A-Za-z0-9-]{2,100}$/;
const SCHEDULE_KEYS = ['every', 'cron', 'timeZone', 'window', 'maxAge', 'enabled'];
const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

/**
 * Parses and validates a declarative groups file (YAML or JSON) without touching anything. Every issue carries the
 * path and the line/column it was found at, so messages read `groups.yaml:12:7 groups[0].schedule.every: …`.
 */
export function parseGroupsFile(text: string, opts: GroupsFileOptions = {}): GroupsFileResult {
  const minIntervalMs = opts.minIntervalMs ?? KEY_PROTECT_MIN_ROTATION_INTERVAL_MS;
  const doc = parseLocatedYaml(text);
  const issues: GroupsFileIssue[] = [];
  if (doc.syntaxErrors.length) {
    for (const e of doc.syntaxErrors) {
      const m = /^line (\d+), column (\d+): (.*)$/.exec(e);
      issues.push({
        severity: 'error',
        path: '',
        line: m ? Number(m[1]) : undefined,
        col: m ? Number(m[2]) : undefined,
        message: `not valid YAML: ${m ? m[3] : e}`,
      });
    }
    return { groups: [], issues, ok: false };
  }
  const issue = (severity: GroupsFileIssue['severity'], path: Path, message: string) => {
    const pos = doc.locate(path);
    issues.push({ severity, path: formatPath(path), line: pos?.line, col: pos?.col, message: clipQuoted(message) });
  };
  const error = (path: Path, message: string) => issue('error', path, message);
  const warn = (path: Path, message: string) => issue('warning', path, message);

  const root = doc.value;
  if (!isRecord(root)) {
    error([], 'expected a mapping with a "groups" list');
    return { groups: [], issues, ok: false };
  }
  unknownKeys(root, TOP_KEYS, [], error);
  if (root.version !== undefined && root.version !== 1)
    error(['version'], `unsupported version ${String(root.version)}; use 1`);

  let defaultSchedule: Record<string, unknown> | undefined;
  let defaultEscrow: KeyCrn | undefined;
  if (root.defaults !== undefined) {
    if (!isRecord(root.defaults)) error(['defaults'], 'must be a mapping (schedule, escrow)');
    else {
      unknownKeys(root.defaults, DEFAULT_KEYS, ['defaults'], error);
      if (root.defaults.schedule !== undefined) {
        if (isRecord(root.defaults.schedule)) defaultSchedule = root.defaults.schedule;
        else error(['defaults', 'schedule'], 'must be a mapping');
      }
      if (root.defaults.escrow !== undefined)
        defaultEscrow = escrowCrn(root.defaults.escrow, ['defaults', 'escrow'], error);
    }
  }

  const groups: GroupSpec[] = [];
  if (root.groups === undefined) {
    error([], 'missing "groups": list the groups to apply');
    return { groups, issues, ok: false };
  }
  if (!Array.isArray(root.groups)) {
    error(['groups'], 'must be a list of groups');
    return { groups, issues, ok: false };
  }
  if (root.groups.length === 0) error(['groups'], 'is empty: declare at least one group');

  const seenIds = new Map<string, number>();
  const seenKeys = new Map<string, string>();
  root.groups.forEach((g, i) => {
    const at: Path = ['groups', i];
    if (!isRecord(g)) {
      error(at, 'must be a mapping with id, primary, duplicates and schedule');
      return;
    }
    const before = issues.filter((x) => x.severity === 'error').length;
    unknownKeys(g, GROUP_KEYS, at, error);

    let id: GroupId | undefined;
    if (g.id === undefined) error(at, 'missing "id"');
    else {
      try {
        id = asGroupId(g.id);
      } catch {
        error(
          [...at, 'id'],
          `"${String(g.id)}" is not a valid group id: use 1-63 lower-case letters, digits or hyphens`,
        );
      }
      if (id !== undefined) {
        const prev = seenIds.get(id);
        if (prev !== undefined) error([...at, 'id'], `duplicate group id "${id}" (also groups[${prev}])`);
        else seenIds.set(id, i);
      }
    }
    if (g.name !== undefined && (typeof g.name !== 'string' || !g.name.trim())) {
      error([...at, 'name'], 'must be a non-empty string');
    }
    if (g.description !== undefined && typeof g.description !== 'string')
      error([...at, 'description'], 'must be a string');

    if (g.primary === undefined) error(at, 'missing "primary" member');
    const primary = g.primary === undefined ? undefined : member(g.primary, [...at, 'primary']);
    const duplicates: MemberSpec[] = [];
    if (g.duplicates === undefined) error(at, 'missing "duplicates": list at least one duplicate member');
    else if (!Array.isArray(g.duplicates)) error([...at, 'duplicates'], 'must be a list of members');
    else if (g.duplicates.length === 0) error([...at, 'duplicates'], 'is empty: a group needs at least one duplicate');
    else
      g.duplicates.forEach((d, j) => {
        const m = member(d, [...at, 'duplicates', j]);
        if (m) duplicates.push(m);
      });

    // one key per member, one group per key
    const inGroup = new Set<string>();
    const all: Array<[MemberSpec | undefined, Path]> = [
      [primary, [...at, 'primary']],
      ...duplicates.map((d, j): [MemberSpec, Path] => [d, [...at, 'duplicates', j]]),
    ];
    for (const [m, p] of all) {
      if (!m) continue;
      const where = `${m.region}/${m.instanceId ?? '(configured instance)'}`;
      if (m.keyId === undefined) {
        if (inGroup.has(where)) error(p, `two members of this group would be created in the same instance (${where})`);
        inGroup.add(where);
      } else {
        const k = `${where}/${m.keyId}`;
        if (inGroup.has(k)) error(p, `key ${m.keyId} is listed twice in this group`);
        inGroup.add(k);
        const other = seenKeys.get(m.keyId);
        if (other !== undefined && other !== id) error(p, `key ${m.keyId} is already a member of group ${other}`);
        seenKeys.set(m.keyId, id ?? '?');
      }
    }

    const schedule = scheduleOf(
      g.schedule,
      defaultSchedule,
      [...at, 'schedule'],
      g.schedule === undefined ? ['defaults', 'schedule'] : undefined,
    );
    const escrow = g.escrow === undefined ? defaultEscrow : escrowCrn(g.escrow, [...at, 'escrow'], error);

    const failed = issues.filter((x) => x.severity === 'error').length > before;
    if (!failed && id && primary && schedule) {
      groups.push({
        id,
        name: typeof g.name === 'string' ? g.name.trim() : id,
        ...(typeof g.description === 'string' ? { description: g.description } : {}),
        primary,
        duplicates,
        schedule,
        ...(escrow ? { escrow } : {}),
      });
    }
  });

  return { groups, issues, ok: !issues.some((x) => x.severity === 'error') };

  function member(v: unknown, at: Path): MemberSpec | undefined {
    if (typeof v === 'string') {
      if (v.startsWith('crn:')) return fromCrn(v, at);
      try {
        return known(asRegionId(v), at);
      } catch {
        error(at, `"${v}" is neither a region (like us-east) nor a key CRN`);
        return undefined;
      }
    }
    if (!isRecord(v)) {
      error(at, 'must be a region, a key CRN, or a mapping {region, instanceId, keyId}');
      return undefined;
    }
    unknownKeys(v, MEMBER_KEYS, at, error);
    let keyRing: string | undefined;
    if (v.keyRing !== undefined) {
      if (typeof v.keyRing !== 'string' || !KEY_RING.test(v.keyRing)) {
        error([...at, 'keyRing'], `"${String(v.keyRing)}" is not a key ring id (2-100 characters of A-Z, a-z, 0-9, -)`);
        return undefined;
      }
      keyRing = v.keyRing;
    }
    const withRing = (m: MemberSpec | undefined) => (m && keyRing ? { ...m, keyRing } : m);
    if (v.crn !== undefined) {
      if (v.region !== undefined || v.instanceId !== undefined || v.keyId !== undefined) {
        error(at, 'give either "crn" or region/instanceId/keyId, not both');
        return undefined;
      }
      return withRing(fromCrn(v.crn, [...at, 'crn']));
    }
    if (v.region === undefined) {
      error(at, 'missing "region"');
      return undefined;
    }
    let ok = true;
    let region: RegionId | undefined;
    let instanceId: InstanceId | undefined;
    let keyId: KeyId | undefined;
    try {
      region = asRegionId(v.region);
    } catch {
      error([...at, 'region'], `"${String(v.region)}" is not a region (like us-south)`);
      ok = false;
    }
    if (v.instanceId !== undefined) {
      try {
        instanceId = asInstanceId(v.instanceId);
      } catch {
        error([...at, 'instanceId'], `"${String(v.instanceId)}" is not a Key Protect instance GUID`);
        ok = false;
      }
    }
    if (v.keyId !== undefined) {
      try {
        keyId = asKeyId(v.keyId);
      } catch {
        error([...at, 'keyId'], `"${String(v.keyId)}" is not a key id (UUID)`);
        ok = false;
      }
      if (instanceId === undefined && ok) {
        warn(
          [...at, 'keyId'],
          'keyId without instanceId: the key is looked up in the instance configured for the region',
        );
      }
    }
    if (!ok || !region) return undefined;
    if (instanceId === undefined) return withRing(known(region, at, keyId));
    return withRing({ region, instanceId, ...(keyId ? { keyId } : {}) });
  }

  function known(region: RegionId, at: Path, keyId?: KeyId): MemberSpec | undefined {
    if (opts.knownRegions && !opts.knownRegions.includes(region)) {
      error(
        at,
        `no Key Protect instance is configured for region ${region} (configured: ${opts.knownRegions.join(', ') || 'none'}); give "instanceId" or configure the region`,
      );
      return undefined;
    }
    return { region, ...(keyId ? { keyId } : {}) };
  }

  function fromCrn(v: unknown, at: Path): MemberSpec | undefined {
    try {
      const p = parseKeyCrn(v);
      return { region: p.region, instanceId: p.instanceId, keyId: p.keyId };
    } catch {
      error(
        at,
        `"${String(v)}" is not a key CRN (crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>:key:<key>)`,
      );
      return undefined;
    }
  }

  function scheduleOf(
    own: unknown,
    defaults: Record<string, unknown> | undefined,
    at: Path,
    fallbackAt: Path | undefined,
  ): Schedule | undefined {
    if (own !== undefined && !isRecord(own)) {
      error(at, 'must be a mapping (every or cron, timeZone, window, maxAge, enabled)');
      return undefined;
    }
    if (own === undefined && defaults === undefined) {
      error(at.slice(0, -1), 'missing "schedule" (and no defaults.schedule): give every: 30d or cron: "0 3 * * 0"');
      return undefined;
    }
    const src: Record<string, unknown> = { ...(defaults ?? {}), ...((own as Record<string, unknown>) ?? {}) };
    // a group's own every/cron replaces the default's, not merges with it
    if (isRecord(own) && (own.every !== undefined || own.cron !== undefined)) {
      if (own.every === undefined) delete src.every;
      if (own.cron === undefined) delete src.cron;
    }
    const p = (k: string): Path =>
      isRecord(own) && own[k] !== undefined ? [...at, k] : (fallbackAt ?? ['defaults', 'schedule']).concat(k);
    if (isRecord(own)) unknownKeys(own, SCHEDULE_KEYS, at, error);
    let ok = true;
    const s: Schedule = {};
    if (src.every === undefined && src.cron === undefined) {
      error(fallbackAt ?? at, 'give exactly one of "every" (e.g. 30d) or "cron" (e.g. "0 3 * * 0")');
      return undefined;
    }
    if (src.every !== undefined && src.cron !== undefined) {
      error(at, 'give either "every" or "cron", not both');
      return undefined;
    }
    if (src.timeZone !== undefined) {
      if (typeof src.timeZone !== 'string' || !validTimeZone(src.timeZone)) {
        error(p('timeZone'), `"${String(src.timeZone)}" is not an IANA time zone (like UTC or Europe/Berlin)`);
        ok = false;
      } else s.timeZone = src.timeZone;
    }
    if (src.every !== undefined) {
      const ms = parseDuration(src.every);
      if (ms === undefined || ms === 0) {
        error(p('every'), `"${String(src.every)}" is not a duration (like 30d, 12h or 90m)`);
        ok = false;
      } else if (ms < minIntervalMs) {
        error(
          p('every'),
          `${formatDuration(ms)} is shorter than ${formatDuration(minIntervalMs)}: Key Protect allows one rotation per key per hour`,
        );
        ok = false;
      } else s.intervalMs = ms;
    }
    if (src.cron !== undefined) {
      if (typeof src.cron !== 'string') {
        error(p('cron'), 'must be a cron expression in quotes, e.g. "0 3 * * 0"');
        ok = false;
      } else {
        try {
          const c = new Cron(src.cron, { paused: true, timezone: s.timeZone ?? 'UTC' });
          const runs = c.nextRuns(6, new Date(Date.UTC(2030, 0, 1)));
          c.stop();
          if (runs.length === 0) {
            error(p('cron'), `"${src.cron}" never fires`);
            ok = false;
          } else {
            const minGap = Math.min(...runs.slice(1).map((d, k) => d.getTime() - runs[k]!.getTime()));
            if (runs.length > 1 && minGap < minIntervalMs) {
              error(
                p('cron'),
                `"${src.cron}" fires every ${formatDuration(minGap)}, more often than Key Protect allows (one rotation per key per ${formatDuration(minIntervalMs)})`,
              );
              ok = false;
            }
          }
          s.cron = src.cron;
        } catch (err) {
          error(
            p('cron'),
            `"${src.cron}" is not a cron expression: ${(err as Error).message.replace(/^CronPattern: /, '')}`,
          );
          ok = false;
        }
      }
    }
    if (src.window !== undefined) {
      const w = windowOf(src.window);
      if (!w) {
        error(p('window'), 'must be "HH:MM-HH:MM" or {start: "HH:MM", end: "HH:MM"} (24-hour clock)');
        ok = false;
      } else if (w.start === w.end) {
        error(p('window'), 'start and end are equal: the window would be empty');
        ok = false;
      } else s.window = w;
    }
    if (src.maxAge !== undefined) {
      const ms = parseDuration(src.maxAge);
      if (ms === undefined || ms === 0) {
        error(p('maxAge'), `"${String(src.maxAge)}" is not a duration (like 90d)`);
        ok = false;
      } else if (s.intervalMs !== undefined && ms < s.intervalMs) {
        error(p('maxAge'), `maxAge ${formatDuration(ms)} is shorter than every ${formatDuration(s.intervalMs)}`);
        ok = false;
      } else s.maxAgeMs = ms;
    }
    if (src.enabled !== undefined) {
      if (typeof src.enabled !== 'boolean') {
        error(p('enabled'), 'must be true or false');
        ok = false;
      } else s.enabled = src.enabled;
    }
    return ok ? s : undefined;
  }
}

function escrowCrn(v: unknown, at: Path, error: (p: Path, m: string) => void): KeyCrn | undefined {
  const crn = isRecord(v) ? v.crn : v;
  try {
    return parseKeyCrn(crn).crn;
  } catch {
    error(at, 'must be an escrow root key CRN (or {crn: ...})');
    return undefined;
  }
}

function windowOf(v: unknown): { start: string; end: string } | undefined {
  let start: unknown;
  let end: unknown;
  if (typeof v === 'string') [start, end] = v.split('-').map((s) => s.trim());
  else if (isRecord(v)) ({ start, end } = v);
  if (typeof start === 'string' && typeof end === 'string' && HHMM.test(start) && HHMM.test(end)) return { start, end };
  return undefined;
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function unknownKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  at: Path,
  error: (p: Path, m: string) => void,
) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      const near = allowed.find((a) => a.toLowerCase() === k.toLowerCase() || levenshtein(a, k) <= 2);
      error(
        [...at, k],
        `unknown field "${k}"${near ? ` (did you mean "${near}"?)` : ''}; allowed: ${allowed.join(', ')}`,
      );
    }
  }
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Formats issues for a terminal: `file:line:col  error  path: message`. */
export function formatIssues(issues: readonly GroupsFileIssue[], file: string): string {
  return issues
    .map((x) => {
      const where = x.line ? `${file}:${x.line}:${x.col}` : file;
      return `${where}  ${x.severity}  ${x.path ? `${x.path}: ` : ''}${x.message}`;
    })
    .join('\n');
}
