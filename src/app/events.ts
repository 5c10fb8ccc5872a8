/**
 * The events use case: Activity Tracker events about Key Protect keys, delivered raw (one CADF event), as a batch,
 * or wrapped in an Event Notifications CloudEvent carrying Cloud Logs alert data. Each relevant event on a member's
 * CRN is either lockstep's own action (evidence on the run, which is woken) or a foreign change (the group is marked
 * diverged/degraded, notified and healed by the rotation service). Events on keys lockstep does not manage are
 * acknowledged and ignored. Idempotent: duplicates are detected by event id and every effect tolerates a replay.
 */
import type { AtEvidence, Clock, Group, Logger, RunId } from '../core/index.js';
import { AppError, isAppError, parseKeyCrn } from '../core/index.js';
import type { ProcessedEventRepository, RunRepository } from './ports.js';
import type { RotationService } from './service.js';

/** Key Protect actions that change what a member holds or whether it can be used. */
export const MEMBER_ACTIONS = [
  'kms.secrets.rotate',
  'kms.secrets.create',
  'kms.secrets.delete',
  'kms.secrets.disable',
  'kms.secrets.enable',
  'kms.secrets.restore',
] as const;

/** The fields lockstep reads of one Activity Tracker (CADF) event. */
export interface ActivityEvent {
  id: string;
  action: string;
  eventTimeMs: number;
  outcome: string;
  targetCrn: string;
  initiatorId: string;
  initiatorName?: string;
  correlationId?: string;
}

/** How the events arrived. */
export type ActivitySource = 'cadf' | 'batch' | 'event-notifications';

/** Largest batch accepted in one request. */
export const MAX_EVENTS_PER_REQUEST = 500;

const EVENT_ID = /^[A-Za-z0-9._:-]{1,200}$/;

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
  if (typeof target.id !== 'string' || target.id === '') throw fail('target.id', 'must be the CRN of the key');
  const eventTimeMs = parseEventTime(raw.eventTime);
  if (eventTimeMs === undefined) throw fail('eventTime', 'must be a timestamp like 2026-08-12T10:00:00.00+0000');
  return {
    id: raw.id,
    action: raw.action as string,
    eventTimeMs,
    outcome: typeof raw.outcome === 'string' ? raw.outcome : 'success',
    targetCrn: target.id,
    initiatorId: typeof initiator.id === 'string' ? initiator.id : 'unknown',
    ...(typeof initiator.name === 'string' ? { initiatorName: initiator.name } : {}),
    ...(typeof raw.correlationId === 'string' && raw.correlationId ? { correlationId: raw.correlationId } : {}),
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
        // not JSON: a plain log message
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

/**
 * Parses a request body into Activity Tracker events: a CADF event, an array of them (or `{events: [...]}`), or an
 * Event Notifications CloudEvent (`specversion` + `data`) whose Cloud Logs alert data carries the events.
 * @throws {AppError} VALIDATION_FAILED for anything else, naming what was expected
 */
export function parseActivityPayload(body: unknown): { source: ActivitySource; events: ActivityEvent[] } {
  const many = (list: unknown[], source: ActivitySource) => {
    if (list.length === 0) throw new AppError('VALIDATION_FAILED', 'The batch is empty');
    if (list.length > MAX_EVENTS_PER_REQUEST) {
      throw new AppError('VALIDATION_FAILED', `At most ${MAX_EVENTS_PER_REQUEST} events per request`, {
        details: { count: list.length },
      });
    }
    return {
      source,
      events: list.map((e, i) => {
        if (!looksLikeCadf(e)) {
          throw new AppError('VALIDATION_FAILED', `events[${i}] is not an Activity Tracker (CADF) event`, {
            details: { index: i },
          });
        }
        return toActivityEvent(e, `events[${i}]`);
      }),
    };
  };
  if (Array.isArray(body)) return many(body, 'batch');
  if (isObject(body) && Array.isArray(body.events) && !('specversion' in body)) return many(body.events, 'batch');
  if (looksLikeCadf(body)) return { source: 'cadf', events: [toActivityEvent(body, 'event')] };
  if (isObject(body) && typeof body.specversion === 'string' && 'data' in body) {
    const found: Record<string, unknown>[] = [];
    collectCadf(body.data, found, 0);
    if (found.length === 0) {
      throw new AppError(
        'VALIDATION_FAILED',
        'The Event Notifications event carries no Activity Tracker events: configure the Cloud Logs alert to include the matching log lines',
        { details: { type: typeof body.type === 'string' ? body.type : 'unknown' } },
      );
    }
    return many(found, 'event-notifications');
  }
  throw new AppError(
    'VALIDATION_FAILED',
    'Expected an Activity Tracker (CADF) event, an array of them, or an Event Notifications CloudEvent carrying them',
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
}

/** Dependencies of {@link handleActivityEvents}. */
export interface EventsDeps {
  service: Pick<RotationService, 'findGroupByMember' | 'attachEvidence' | 'markForeignChange' | 'getRun'>;
  stores: { events: ProcessedEventRepository; runs: Pick<RunRepository, 'get' | 'save'> };
  clock: Clock;
  logger: Logger;
  /**
   * IAM ids lockstep itself acts as (its service id / trusted profile). When set, an event is lockstep's own only if
   * its initiator is one of them or its correlation id names the group's run; when empty, an event on a member of a
   * group with a run in progress counts as own.
   */
  ownIamIds?: readonly string[];
}

const RUN_ID_IN_TEXT = /run-[a-z0-9-]{8,80}/;
const UNFINISHED = new Set(['pending', 'running', 'degraded']);

/**
 * Handles a delivery of Activity Tracker events, one at a time, idempotently.
 * @example
 * const summary = await handleActivityEvents(deps, parseActivityPayload(body).events, { source: 'cadf' });
 */
export async function handleActivityEvents(
  deps: EventsDeps,
  events: readonly ActivityEvent[],
  opts: { source: ActivitySource },
): Promise<EventsSummary> {
  const summary: EventsSummary = {
    received: events.length,
    own: 0,
    foreign: 0,
    ignored: 0,
    duplicates: 0,
    failed: 0,
    outcomes: [],
  };
  const groups = new Map<string, Promise<Group | undefined>>();
  const groupOf = (crn: string) => {
    let g = groups.get(crn);
    if (!g) {
      g = deps.service.findGroupByMember(crn);
      groups.set(crn, g);
    }
    return g;
  };
  const seen = new Set<string>();
  for (const ev of events) {
    let result: EventOutcome;
    if (seen.has(ev.id) || (await deps.stores.events.isProcessed?.(ev.id))) {
      result = { eventId: ev.id, outcome: 'duplicate' };
    } else {
      seen.add(ev.id);
      try {
        result = await handleOne(deps, ev, groupOf);
        const first = await deps.stores.events.markProcessed(ev.id, {
          source: opts.source,
          receivedAtMs: deps.clock.nowMs(),
          ...(result.groupId ? { groupId: result.groupId as Group['id'] } : {}),
        });
        // Someone else finished the same event meanwhile; our effects were idempotent.
        if (!first) result = { ...result, outcome: 'duplicate' };
      } catch (err) {
        result = { eventId: ev.id, outcome: 'failed', reason: isAppError(err) ? err.code : 'INTERNAL' };
        deps.logger.error('event.failed', {
          eventId: ev.id,
          action: ev.action,
          code: result.reason,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    summary[result.outcome === 'duplicate' ? 'duplicates' : result.outcome] += 1;
    summary.outcomes.push(result);
    deps.logger.info('event.handled', { action: ev.action, ...result });
  }
  return summary;
}

async function handleOne(
  deps: EventsDeps,
  ev: ActivityEvent,
  groupOf: (crn: string) => Promise<Group | undefined>,
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
  const group = await groupOf(target.crn);
  // The lookup matches instance and key ids; a CRN naming them under another account or region is not the member's
  // (a forged or mistaken CRN) and changes nothing. From here on the member's own CRN is used.
  const crn = group?.members.find((m) => sameKey(m.crn, target))?.crn;
  if (!group || !crn) return { ...base, outcome: 'ignored', reason: 'unmanaged-key' };

  const ownRunId = await ownRun(deps, ev, group);
  if (ownRunId !== undefined) {
    const evidence: AtEvidence = {
      eventId: ev.id,
      action: ev.action,
      eventTimeMs: ev.eventTimeMs,
      initiator: ev.initiatorId,
      outcome: ev.outcome,
      ...(ev.correlationId ? { correlationId: ev.correlationId } : {}),
    };
    const { runId } = await deps.service.attachEvidence(ownRunId ? { crn, runId: ownRunId } : { crn }, evidence);
    if (runId) await wake(deps, runId);
    return { ...base, outcome: 'own', groupId: group.id, ...(runId ? { runId } : {}) };
  }
  const { status, healRunId } = await deps.service.markForeignChange(group.id, {
    crn,
    action: ev.action,
    eventId: ev.id,
    eventTimeMs: ev.eventTimeMs,
    initiator: ev.initiatorName ? `${ev.initiatorId} (${ev.initiatorName})` : ev.initiatorId,
  });
  return {
    ...base,
    outcome: 'foreign',
    groupId: group.id,
    reason: `group ${status}`,
    ...(healRunId ? { runId: healRunId } : {}),
  };
}

/** True when `memberCrn` names the same key as `target`: region, account, instance and key (GUIDs in any case). */
function sameKey(memberCrn: string, target: ReturnType<typeof parseKeyCrn>): boolean {
  try {
    const m = parseKeyCrn(memberCrn);
    return (
      m.region.toLowerCase() === target.region.toLowerCase() &&
      m.accountId.toLowerCase() === target.accountId.toLowerCase() &&
      m.instanceId === target.instanceId &&
      m.keyId === target.keyId
    );
  } catch {
    return false;
  }
}

/**
 * Whether the event is lockstep's own action. Returns the run id when the correlation id names one of the group's
 * runs, '' when it is own but the run must be found by the member's CRN, undefined when foreign.
 */
async function ownRun(deps: EventsDeps, ev: ActivityEvent, group: Group): Promise<string | undefined> {
  const named = ev.correlationId ? RUN_ID_IN_TEXT.exec(ev.correlationId)?.[0] : undefined;
  if (named) {
    try {
      const run = await deps.service.getRun(named);
      if (run.groupId === group.id) return run.id;
    } catch (err) {
      if (!isAppError(err) || err.code !== 'RUN_NOT_FOUND') throw err;
    }
  }
  const own = deps.ownIamIds ?? [];
  if (own.length > 0) return own.includes(ev.initiatorId) ? '' : undefined;
  if (!group.activeRunId) return undefined;
  try {
    const run = await deps.service.getRun(group.activeRunId);
    return UNFINISHED.has(run.status) ? run.id : undefined;
  } catch (err) {
    if (isAppError(err) && err.code === 'RUN_NOT_FOUND') return undefined;
    throw err;
  }
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
