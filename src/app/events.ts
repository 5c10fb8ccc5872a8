/**
 * The events use case. What arrives is a **wake-up**, never a source of truth:
 *
 * - a Cloud Logs alert relayed by Event Notifications (the path IBM delivers): a CloudEvent whose `data` carries
 *   the alert status and **one** log example of at most 1,000 characters, cut with "..." when longer. Whatever key
 *   CRNs, key ids or instance ids survive in the example name the groups to verify; when nothing identifiable
 *   survives, every group with a member in the alert's account is verified;
 * - full Activity Tracker (CADF) events posted directly (one or a batch), the optional richer route.
 *
 * An event is lockstep's own only when its initiator is one of lockstep's IAM ids **and** its correlation id matches
 * a call lockstep made and persisted on that member (`RunMember.calls`); then it is evidence on that run. Anything
 * else on a member asks for a verification of its group, which reads Key Protect: only that reading changes a
 * group (see `verification.ts`). Event fields — times, initiators, correlation ids — are claims: bounded, labelled
 * "claimed by the event", never written into the signed history, never used to schedule work.
 *
 * Every verification asked for is first persisted on the group (`verificationRequestedAtMs`, honoured by the
 * scheduler tick), then tried at once within a time budget, so a delivery is answered well within Event
 * Notifications' 10 s timeout and nothing is lost when the budget runs out.
 */
import { createHash } from 'node:crypto';
import type { AtEvidence, Clock, Group, GroupId, Logger, RunId } from '../core/index.js';
import { AppError, isAppError, parseKeyCrn } from '../core/index.js';
import { lineageTextProblem } from '../lineage/index.js';
import type { RotationRun } from '../rotation/index.js';
import type { GroupRepository, ProcessedEventRepository, RunRepository } from './ports.js';
import type { RotationService } from './service.js';

/** Key Protect actions that change what a member holds or whether it can be used (Key Protect `at-events.md`). */
export const MEMBER_ACTIONS = [
  'kms.secrets.rotate',
  'kms.secrets.create',
  'kms.secrets.delete',
  'kms.secrets.disable',
  'kms.secrets.enable',
  'kms.secrets.restore',
  'kms.secrets.expire',
  'kms.secrets.purge',
  'kms.secrets.setkeyfordeletion',
  'kms.secrets.unsetkeyfordeletion',
] as const;

/** The fields lockstep reads of one Activity Tracker (CADF) event. All but `id` and `targetCrn` are claims. */
export interface ActivityEvent {
  id: string;
  action: string;
  /** The event's claimed time (clamped to the receipt window when used). */
  eventTimeMs: number;
  outcome: string;
  targetCrn: string;
  /** Claimed by the event: bounded to {@link CLAIM_MAX} characters of {@link CLAIM_CHARS}. */
  initiatorId: string;
  correlationId?: string;
}

/** How the events arrived. */
export type ActivitySource = 'cadf' | 'batch' | 'event-notifications';

/** What lockstep reads of a Cloud Logs alert notification. */
export interface AlertInfo {
  /** A digest of the CloudEvent id (Cloud Logs ids contain characters event ids may not). */
  id: string;
  status: 'triggered' | 'resolved';
  /** The account of the Cloud Logs instance (`source` CRN), when it parses. */
  accountId?: string;
  truncated: boolean;
  /** Key CRNs and GUIDs (key or instance ids) that survived in the log example. */
  crns: string[];
  guids: string[];
}

/** A parsed delivery. */
export interface ActivityPayload {
  source: ActivitySource;
  events: ActivityEvent[];
  alert?: AlertInfo;
}

/** Largest batch accepted in one request. */
export const MAX_EVENTS_PER_REQUEST = 500;
/** Longest claimed text kept (initiator ids, correlation ids). */
export const CLAIM_MAX = 128;
/** Characters a kept claim may contain; anything else becomes `_`. */
export const CLAIM_CHARS = 'A-Za-z0-9._:@/+=-';
/** Event times are clamped to [receipt − window, receipt]. */
export const EVENT_TIME_WINDOW_MS = 24 * 3_600_000;

const EVENT_ID = /^[A-Za-z0-9._:-]{1,200}$/;
const NOT_CLAIM_CHAR = new RegExp(`[^${CLAIM_CHARS}]`, 'g');
const KEY_CRN =
  /crn:v1:[A-Za-z0-9-]+:[A-Za-z0-9-]+:kms:[A-Za-z0-9-]+:a\/[A-Za-z0-9]+:[0-9a-fA-F-]{36}:key:[0-9a-fA-F-]{36}/g;
const GUID = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/g;
const LOGS_CRN = /^crn:v1:[A-Za-z0-9-]+:[A-Za-z0-9-]+:logs:[A-Za-z0-9-]*:a\/([A-Za-z0-9]+):/;
const MAX_HINTS = 50;

/** A claim as lockstep keeps it: bounded length, a fixed character set. */
export function boundClaim(v: unknown): string {
  return String(v ?? '')
    .slice(0, CLAIM_MAX)
    .replace(NOT_CLAIM_CHAR, '_');
}

/** A claimed time clamped to the receipt window: never later than receipt, never earlier than the window. */
export function clampEventTime(claimedMs: number, receivedAtMs: number): number {
  return Math.min(receivedAtMs, Math.max(receivedAtMs - EVENT_TIME_WINDOW_MS, claimedMs));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function looksLikeCadf(v: unknown): v is Record<string, unknown> {
  return isObject(v) && typeof v.action === 'string' && isObject(v.target) && 'eventTime' in v;
}

/** `2026-08-12T10:00:00.00+0000` (Activity Tracker) and ISO forms. */
export function parseEventTime(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const normalized = text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const ms = Date.parse(normalized);
  return Number.isFinite(ms) ? ms : undefined;
}

function toActivityEvent(raw: Record<string, unknown>, where: string): ActivityEvent {
  const fail = (field: string, hint: string) =>
    new AppError('VALIDATION_FAILED', `${where}: ${field} ${hint}`, { details: { field, at: where } });
  const target = raw.target as Record<string, unknown>;
  const initiator = isObject(raw.initiator) ? raw.initiator : {};
  if (typeof raw.id !== 'string' || !EVENT_ID.test(raw.id))
    throw fail('id', 'must be 1-200 characters of [A-Za-z0-9._:-]');
  if (typeof target.id !== 'string' || target.id === '' || target.id.length > 500)
    throw fail('target.id', 'must be the CRN of the key');
  const eventTimeMs = parseEventTime(raw.eventTime);
  if (eventTimeMs === undefined) throw fail('eventTime', 'must be a timestamp like 2026-08-12T10:00:00.00+0000');
  return {
    id: raw.id,
    action: String(raw.action).slice(0, 100),
    eventTimeMs,
    outcome: typeof raw.outcome === 'string' ? raw.outcome.slice(0, 20) : 'success',
    targetCrn: target.id,
    initiatorId: typeof initiator.id === 'string' ? boundClaim(initiator.id) : 'unknown',
    ...(typeof raw.correlationId === 'string' && raw.correlationId
      ? { correlationId: boundClaim(raw.correlationId) }
      : {}),
  };
}

/** Collects CADF events anywhere inside Cloud Logs alert data (arrays, nested objects, JSON-encoded log lines). */
function collectCadf(v: unknown, out: Record<string, unknown>[], depth: number): void {
  if (depth > 6 || out.length > MAX_EVENTS_PER_REQUEST) return;
  if (typeof v === 'string') {
    const t = v.trim();
    if (t.startsWith('{') && t.includes('"action"')) {
      try {
        collectCadf(JSON.parse(t), out, depth + 1);
      } catch {
        // not JSON (or cut with "..."): a plain or truncated log line; its identifiers are read as hints
      }
    }
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectCadf(x, out, depth + 1);
    return;
  }
  if (!isObject(v)) return;
  if (looksLikeCadf(v)) {
    out.push(v);
    return;
  }
  for (const x of Object.values(v)) collectCadf(x, out, depth + 1);
}

function manyEvents(list: unknown[], source: ActivitySource): ActivityEvent[] {
  if (list.length > MAX_EVENTS_PER_REQUEST) {
    throw new AppError('VALIDATION_FAILED', `At most ${MAX_EVENTS_PER_REQUEST} events per request`, {
      details: { count: list.length },
    });
  }
  return list.map((e, i) => {
    if (!looksLikeCadf(e)) {
      throw new AppError('VALIDATION_FAILED', `events[${i}] is not an Activity Tracker (CADF) event`, {
        details: { index: i, source },
      });
    }
    return toActivityEvent(e, `events[${i}]`);
  });
}

/** Reads a Cloud Logs alert notification (Cloud Logs `alerts/event-payload.md`). */
function parseAlert(body: Record<string, unknown>): ActivityPayload {
  const bad = (field: string, hint: string) =>
    new AppError('VALIDATION_FAILED', `Event Notifications CloudEvent: ${field} ${hint}`, { details: { field } });
  if (typeof body.id !== 'string' || body.id === '' || body.id.length > 300) throw bad('id', 'must be a string');
  const data = body.data;
  if (!isObject(data)) throw bad('data', 'must be the Cloud Logs alert data (an object)');
  if (data.status !== 'triggered' && data.status !== 'resolved') {
    throw bad('data.status', 'must be "triggered" or "resolved" (a Cloud Logs alert notification)');
  }
  if (!isObject(data.alert_definition)) throw bad('data.alert_definition', 'must be an object');
  const found: Record<string, unknown>[] = [];
  collectCadf(data, found, 0);
  const example = typeof data.log_example === 'string' ? data.log_example : JSON.stringify(data.log_example ?? '');
  const text = example.slice(0, 20_000);
  const crns = [...new Set(text.match(KEY_CRN) ?? [])].slice(0, MAX_HINTS);
  const guids = [...new Set((text.match(GUID) ?? []).map((g) => g.toLowerCase()))].slice(0, MAX_HINTS);
  const source =
    typeof body.source === 'string' ? body.source : typeof body.ibmensourceid === 'string' ? body.ibmensourceid : '';
  const accountId = LOGS_CRN.exec(source)?.[1];
  return {
    source: 'event-notifications',
    events: manyEvents(found, 'event-notifications'),
    alert: {
      id: `alert-${createHash('sha256').update(body.id).digest('hex').slice(0, 32)}`,
      status: data.status,
      ...(accountId ? { accountId } : {}),
      truncated: data.log_example_truncated === true,
      crns,
      guids,
    },
  };
}

/**
 * Parses a request body: a CADF event, an array of them (or `{events: [...]}`), or an Event Notifications
 * CloudEvent carrying a Cloud Logs alert (its log example may be cut: that is not bad input).
 * @throws {AppError} VALIDATION_FAILED for anything else, naming what was expected
 */
export function parseActivityPayload(body: unknown): ActivityPayload {
  if (Array.isArray(body) || (isObject(body) && Array.isArray(body.events) && !('specversion' in body))) {
    const list = (Array.isArray(body) ? body : body.events) as unknown[];
    if (list.length === 0) throw new AppError('VALIDATION_FAILED', 'The batch is empty');
    return { source: 'batch', events: manyEvents(list, 'batch') };
  }
  if (looksLikeCadf(body)) return { source: 'cadf', events: [toActivityEvent(body, 'event')] };
  if (isObject(body) && typeof body.specversion === 'string' && 'data' in body) return parseAlert(body);
  throw new AppError(
    'VALIDATION_FAILED',
    'Expected an Activity Tracker (CADF) event, an array of them, or an Event Notifications CloudEvent of a Cloud Logs alert',
  );
}

/** What happened to one event. */
export interface EventOutcome {
  eventId: string;
  outcome: 'own' | 'foreign' | 'ignored' | 'duplicate' | 'failed';
  reason?: string;
  groupId?: string;
  runId?: string;
}

/** Summary of one delivery. */
export interface EventsSummary {
  received: number;
  own: number;
  foreign: number;
  ignored: number;
  duplicates: number;
  failed: number;
  outcomes: EventOutcome[];
  /** The alert, when the delivery was one. `resolved` alerts are acknowledged without work. */
  alert?: { status: AlertInfo['status']; truncated: boolean; named: number; scope: 'named' | 'account' | 'none' };
  /** Groups whose verification was asked for: done at once, or left to the scheduler tick (never lost). */
  verification: { requested: number; verified: Array<{ groupId: string; result: string }>; queued: string[] };
}

/** Dependencies of {@link handleDelivery}. */
export interface EventsDeps {
  service: Pick<RotationService, 'attachEvidence' | 'verify'>;
  stores: {
    events: ProcessedEventRepository;
    runs: Pick<RunRepository, 'get' | 'save' | 'listByGroup'>;
    groups: Pick<GroupRepository, 'list' | 'mutate'>;
  };
  clock: Clock;
  logger: Logger;
  /** IAM ids lockstep itself acts as (required: without them nothing is own). */
  ownIamIds: readonly string[];
  /** Time the delivery may spend verifying before it answers (default 4 s; Event Notifications waits 10 s). */
  inlineBudgetMs?: number;
  /** Groups verified at once per delivery; the rest are left to the tick (default 20). */
  maxInlineGroups?: number;
  /** Groups one alert may ask to verify (default 1,000). */
  maxGroupsPerAlert?: number;
  /** Waits (injected for tests). */
  sleep?: (ms: number) => Promise<void>;
}

const UNFINISHED = new Set(['pending', 'running', 'degraded']);

/** Handles full CADF events (the direct route). Same as {@link handleDelivery} without an alert. */
export async function handleActivityEvents(
  deps: EventsDeps,
  events: readonly ActivityEvent[],
  opts: { source: ActivitySource },
): Promise<EventsSummary> {
  return handleDelivery(deps, { source: opts.source, events: [...events] });
}

/**
 * Handles one delivery: own events become evidence, everything else on a member (and every triggered alert) asks
 * for a verification of the groups concerned, persisted first, then tried within the time budget.
 * @example
 * const summary = await handleDelivery(deps, parseActivityPayload(body));
 */
export async function handleDelivery(deps: EventsDeps, payload: ActivityPayload): Promise<EventsSummary> {
  const receivedAtMs = deps.clock.nowMs();
  const summary: EventsSummary = {
    received: payload.events.length,
    own: 0,
    foreign: 0,
    ignored: 0,
    duplicates: 0,
    failed: 0,
    outcomes: [],
    verification: { requested: 0, verified: [], queued: [] },
  };
  if (payload.alert?.status === 'resolved') {
    summary.alert = { status: 'resolved', truncated: payload.alert.truncated, named: 0, scope: 'none' };
    summary.received = 0;
    return summary;
  }
  const groups = await allGroups(deps, deps.maxGroupsPerAlert ?? 1_000);
  const toVerify = new Map<GroupId, string>();
  const seen = new Set<string>();
  for (const ev of payload.events) {
    let result: EventOutcome;
    if (seen.has(ev.id) || (await deps.stores.events.isProcessed?.(ev.id))) {
      result = { eventId: ev.id, outcome: 'duplicate' };
    } else {
      seen.add(ev.id);
      try {
        result = await handleOne(deps, ev, groups, receivedAtMs);
        if (result.outcome === 'foreign' && result.groupId) {
          toVerify.set(
            result.groupId as GroupId,
            `event:${ev.id} ${boundClaim(ev.action)} (claimed by the event: initiator "${ev.initiatorId}")`,
          );
        }
      } catch (err) {
        result = { eventId: ev.id, outcome: 'failed', reason: isAppError(err) ? err.code : 'INTERNAL' };
        deps.logger.error('event.failed', { eventId: ev.id, code: result.reason });
      }
    }
    summary[result.outcome === 'duplicate' ? 'duplicates' : result.outcome] += 1;
    summary.outcomes.push(result);
    deps.logger.info('event.handled', { action: boundClaim(ev.action), ...result });
  }
  if (payload.alert) {
    const a = payload.alert;
    const named = groupsNamedBy(groups, a);
    const scope = named.length > 0 || payload.events.length > 0 ? 'named' : 'account';
    const targets =
      scope === 'named' ? named : groups.filter((g) => !a.accountId || g.members.some((m) => inAccount(m.crn, a)));
    for (const g of targets) toVerify.set(g.id, `alert:${a.id}${a.truncated ? ' (truncated example)' : ''}`);
    summary.alert = { status: a.status, truncated: a.truncated, named: named.length, scope };
  }
  await wakeUp(deps, toVerify, summary, receivedAtMs);
  // Processed only once their verification is persisted: a failure before this point is retried by the sender.
  for (const o of summary.outcomes) {
    if (o.outcome === 'duplicate' || o.outcome === 'failed') continue;
    const first = await deps.stores.events.markProcessed(o.eventId, {
      source: payload.source,
      receivedAtMs,
      ...(o.groupId ? { groupId: o.groupId as GroupId } : {}),
    });
    // An earlier delivery of the same event finished first; every effect above tolerates the replay.
    if (!first) {
      summary[o.outcome] -= 1;
      summary.duplicates += 1;
      o.outcome = 'duplicate';
    }
  }
  return summary;
}

/** Every group (bounded): the hints of one delivery are matched against their members. */
async function allGroups(deps: EventsDeps, max: number): Promise<Group[]> {
  const out: Group[] = [];
  let cursor: string | undefined;
  do {
    const page = await deps.stores.groups.list({ limit: 100, ...(cursor ? { cursor } : {}) });
    out.push(...page.items);
    cursor = page.next;
  } while (cursor && out.length < max);
  return out.slice(0, max);
}

function groupsNamedBy(groups: Group[], a: AlertInfo): Group[] {
  const parts = a.crns.flatMap((c) => {
    try {
      return [parseKeyCrn(c)];
    } catch {
      return [];
    }
  });
  const guids = new Set(a.guids);
  return groups.filter((g) =>
    g.members.some(
      (m) =>
        parts.some((p) => sameKey(m.crn, p)) ||
        guids.has(m.keyId.toLowerCase()) ||
        guids.has(m.instanceId.toLowerCase()),
    ),
  );
}

function inAccount(crn: string, a: AlertInfo): boolean {
  try {
    return parseKeyCrn(crn).accountId.toLowerCase() === a.accountId?.toLowerCase();
  } catch {
    return false;
  }
}

async function handleOne(
  deps: EventsDeps,
  ev: ActivityEvent,
  groups: Group[],
  receivedAtMs: number,
): Promise<EventOutcome> {
  const base = { eventId: ev.id };
  if (!(MEMBER_ACTIONS as readonly string[]).includes(ev.action))
    return { ...base, outcome: 'ignored', reason: 'action-not-relevant' };
  if (ev.outcome !== 'success') return { ...base, outcome: 'ignored', reason: 'action-failed' };
  let target: ReturnType<typeof parseKeyCrn>;
  try {
    target = parseKeyCrn(ev.targetCrn);
  } catch {
    return { ...base, outcome: 'ignored', reason: 'not-a-key-crn' };
  }
  // A CRN naming a member's instance and key under another account or region is not the member's (a forged or
  // mistaken CRN) and changes nothing. From here on the member's own CRN is used.
  const group = groups.find((g) => g.members.some((m) => sameKey(m.crn, target)));
  const crn = group?.members.find((m) => sameKey(m.crn, target))?.crn;
  if (!group || !crn) return { ...base, outcome: 'ignored', reason: 'unmanaged-key' };

  const run = await ownCall(deps, ev, group, crn);
  if (!run) return { ...base, outcome: 'foreign', groupId: group.id, reason: 'verification requested' };
  const evidence: AtEvidence = {
    eventId: ev.id,
    action: ev.action,
    eventTimeMs: clampEventTime(ev.eventTimeMs, receivedAtMs),
    // Only a configured IAM id and lockstep's own correlation id get here: both are lockstep's words.
    initiator: ev.initiatorId,
    outcome: ev.outcome,
    ...(ev.correlationId ? { correlationId: ev.correlationId } : {}),
  };
  // The evidence ends up in the signed history: a field the lineage text boundary would refuse (e.g. an event id
  // starting with "-") must not reach the run, or its record step could never complete.
  const unrecordable = (['eventId', 'action', 'initiator', 'outcome', 'correlationId'] as const).find(
    (f) => evidence[f] !== undefined && lineageTextProblem(evidence[f], 'evidence') !== undefined,
  );
  if (unrecordable) {
    deps.logger.warn('event.evidence-refused', { groupId: group.id, field: unrecordable });
    return { ...base, outcome: 'ignored', groupId: group.id, reason: 'evidence-not-recordable' };
  }
  const { runId } = await deps.service.attachEvidence({ crn, runId: run.id }, evidence);
  if (runId) await wake(deps, runId);
  return { ...base, outcome: 'own', groupId: group.id, ...(runId ? { runId } : {}) };
}

/** True when `memberCrn` names the same key as `target`: region, account, instance and key (GUIDs in any case). */
function sameKey(memberCrn: string, target: ReturnType<typeof parseKeyCrn>): boolean {
  try {
    const m = parseKeyCrn(memberCrn);
    return (
      m.region.toLowerCase() === target.region.toLowerCase() &&
      m.accountId.toLowerCase() === target.accountId.toLowerCase() &&
      m.instanceId.toLowerCase() === target.instanceId.toLowerCase() &&
      m.keyId.toLowerCase() === target.keyId.toLowerCase()
    );
  } catch {
    return false;
  }
}

const CALL_OF_ACTION: Record<string, string> = {
  'kms.secrets.rotate': 'kms.secrets.rotate',
  'kms.secrets.create': 'kms.secrets.create',
};

/**
 * The run whose persisted call on this member the event matches — lockstep's own action — or undefined. Both must
 * hold: the initiator is one of lockstep's IAM ids, and the correlation id is one lockstep generated and persisted
 * for the same kind of call on this member. A correlation id alone is any caller's choice.
 */
async function ownCall(
  deps: EventsDeps,
  ev: ActivityEvent,
  group: Group,
  crn: string,
): Promise<RotationRun | undefined> {
  if (!ev.correlationId || !deps.ownIamIds.includes(ev.initiatorId)) return undefined;
  const action = CALL_OF_ACTION[ev.action];
  if (!action) return undefined;
  const made = (r: RotationRun) =>
    r.members.some(
      (m) => m.crn === crn && (m.calls ?? []).some((c) => c.correlationId === ev.correlationId && c.action === action),
    );
  // The group's active run first, read by id: an index query can lag behind a write that just happened (the call is
  // persisted moments before Key Protect emits the event), a read by id cannot.
  if (group.activeRunId) {
    const active = await deps.stores.runs.get(group.activeRunId).catch(() => undefined);
    if (active && made(active.value as unknown as RotationRun)) return active.value as unknown as RotationRun;
  }
  const runs = (await deps.stores.runs.listByGroup(group.id, 20)) as unknown as RotationRun[];
  return runs.find(made);
}

/** Lets the next tick pick the run up at once (it may be waiting on a backoff). */
async function wake(deps: EventsDeps, runId: RunId): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const cur = await deps.stores.runs.get(runId);
    const nowMs = deps.clock.nowMs();
    if (!UNFINISHED.has(cur.value.status) || (cur.value.nextAttemptAtMs ?? 0) <= nowMs) return;
    try {
      await deps.stores.runs.save({ ...cur.value, nextAttemptAtMs: nowMs }, cur.rev);
      return;
    } catch (err) {
      if (!isAppError(err) || err.code !== 'STORE_CONFLICT') throw err;
    }
  }
}

/**
 * Persists a verification request on every group (the tick honours it), then verifies as many as the budget
 * allows at once. Anything not finished within the budget stays requested: the answer does not wait for it.
 */
async function wakeUp(
  deps: EventsDeps,
  toVerify: Map<GroupId, string>,
  summary: EventsSummary,
  receivedAtMs: number,
): Promise<void> {
  const ids = [...toVerify.keys()];
  summary.verification.requested = ids.length;
  await inParallel(ids, 8, (id) =>
    deps.stores.groups.mutate(id, (g) => ({
      ...g,
      verificationRequestedAtMs: Math.min(g.verificationRequestedAtMs ?? receivedAtMs, receivedAtMs),
      nextDueAtMs: Math.min(g.nextDueAtMs ?? receivedAtMs, receivedAtMs),
    })),
  );
  const budgetMs = deps.inlineBudgetMs ?? 4_000;
  const deadline = receivedAtMs + budgetMs;
  const inline = ids.slice(0, deps.maxInlineGroups ?? 20);
  const done = new Map<string, string>();
  const work = inParallel(inline, 4, async (id) => {
    if (deps.clock.nowMs() >= deadline) return;
    try {
      const r = await deps.service.verify(id, { trigger: toVerify.get(id)!, probes: false });
      done.set(id, r.result);
    } catch (err) {
      deps.logger.warn('events.verify_failed', { groupId: id, code: isAppError(err) ? err.code : 'INTERNAL' });
    }
  }).catch(() => undefined);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.()));
  await Promise.race([work, sleep(Math.max(0, deadline - deps.clock.nowMs()))]);
  // A snapshot: verifications still running go on in the background (their request stays until they finish).
  const finished = new Map(done);
  summary.verification.verified = [...finished].map(([groupId, result]) => ({ groupId, result }));
  summary.verification.queued = ids.filter((id) => !finished.has(id));
}

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}
